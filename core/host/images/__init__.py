"""Build cronium's images locally (pushed to a private registry only on request) and tell whether they are up to date.

The image set (see docs/architecture.md): ``base`` (Debian bookworm minbase + python3 +
ca-certificates made with debootstrap, or a thin layer on an existing image given as ``base``),
the job images ``python``, ``bash`` and ``node``, the runtime-API ``sidecar`` and ``redis``.
Their build inputs live in the ``cronium.images`` package (the ``images/`` folder), found through
``importlib.resources`` so that a normal install builds the same images as a git checkout.

Every image carries two labels: ``cronium.image=<name>`` and ``cronium.image.inputs=<sha256>``, the
hash of everything that defines it (Dockerfile, copied files, pinned requirements, the debootstrap
recipe, and the image id of its parent ``base``, so that a rebuilt base cascades). A build is
skipped when the tagged image exists with the same inputs hash.

This package is library code: no Click, no config. The caller passes the tags, the docker client and
a ``progress(name, message)`` callback. Its modules:

- ``inputs`` — the image set and labels, the inputs hash, locating the build inputs, a plan per image;
- ``engine`` — the build error, condensed progress, looking an image up on the engine;
- ``build`` — building in dependency order (``docker build`` of a prepared context);
- ``wheels`` — the sidecar's wheels, installed on the host for the base image's Python;
- ``base_source`` — where the base comes from (``images.build_base``: debootstrap, registry, an image);
- ``debootstrap`` — the ``base`` image from a debootstrapped root file system;
- ``status`` — presence and freshness of every image;
- ``registry`` — names in a private registry (``images.registry``), pushing there, reachability.
"""
from __future__ import annotations

from .base_source import REGISTRY_IMAGE, BaseChoice, resolve_base
from .build import BuildResult, build_images
from .engine import ImageBuildError
from .inputs import (
    IMAGE_NAMES,
    JOB_IMAGES,
    LABEL_INPUTS,
    LABEL_NAME,
    LABEL_SOURCE,
    compute_inputs_hash,
    default_tags,
    sidecar_source_dir,
)
from .registry import PUSHED_IMAGES, RegistryError, push_images, registry_reachable, registry_tag
from .status import ImageStatus, image_status
from .wheels import wheel_cache_dir, wheel_platforms

__all__ = [
    "IMAGE_NAMES", "JOB_IMAGES", "LABEL_NAME", "LABEL_INPUTS", "LABEL_SOURCE", "BuildResult", "ImageStatus",
    "ImageBuildError", "default_tags", "compute_inputs_hash", "build_images", "image_status", "wheel_platforms",
    "wheel_cache_dir", "sidecar_source_dir", "BaseChoice", "REGISTRY_IMAGE", "resolve_base",
    "PUSHED_IMAGES", "RegistryError", "push_images", "registry_reachable",
    "registry_tag",
]
