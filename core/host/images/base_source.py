"""Where the ``base`` image comes from: the one setting ``images.build_base`` (or ``cronium images
build --base``).

- ``debootstrap`` (the default; ``""`` means the same): a Debian bookworm root file system made on
  this host with debootstrap. Needs only Debian's package mirror, no registry.
- ``registry``: the official Python image on Debian bookworm (REGISTRY_IMAGE), pulled when it is not
  present, with cronium's thin base layer on top; every other image is built from that base as
  usual. When it cannot be pulled (no registry reachable), the build says so and falls back to
  debootstrap.
- anything else: an image reference to build on (e.g. ``debian:bookworm-slim``), pulled when not
  present; no fallback, since it was asked for by name.

``images.base`` stays the *tag* of the base image, like ``images.python`` for the Python image.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from ...errors import UsageError
from .engine import Progress, get_image

DEBOOTSTRAP = "debootstrap"
REGISTRY = "registry"
#: The official image `registry` starts from: Debian bookworm with Python 3.11, the Python the
#: sidecar's wheels and the helpers are built and tested for (Debian 12's python3 is 3.11 too).
REGISTRY_IMAGE = "python:3.11-slim-bookworm"


@dataclass(frozen=True)
class BaseChoice:
    ref: str | None  # the image to build the base on; None: debootstrap
    note: str | None = None  # why `registry` fell back to debootstrap


class RegistryUnreachable(Exception):
    """The engine could not pull an image (no registry reachable, or the image is not there)."""


def parse_setting(value: str | None) -> str:
    """The setting, normalised: `debootstrap`, `registry` or an image reference. A word that is
    neither but close to one of them is a typo, not an image name."""
    value = (value or "").strip() or DEBOOTSTRAP
    if value in (DEBOOTSTRAP, REGISTRY) or "/" in value or ":" in value:
        return value
    close = difflib.get_close_matches(value, (DEBOOTSTRAP, REGISTRY), n=1, cutoff=0.7)
    if close:
        raise UsageError(f"the base {value!r} (images.build_base, or --base) is neither {DEBOOTSTRAP!r} nor "
                         f"{REGISTRY!r} nor an image reference",
                         hint=f"did you mean {close[0]!r}? (or give an image reference such as debian:bookworm-slim)")
    return value


def choose_base(setting: str | None, *, present: Callable[[str], bool],
                pull: Callable[[str], None] | None) -> BaseChoice:
    """The decision, without Docker: `present(ref)` says whether the engine has an image, `pull(ref)`
    pulls it (raising RegistryUnreachable); `pull=None` means read-only (status: never pull)."""
    setting = parse_setting(setting)
    if setting == DEBOOTSTRAP:
        return BaseChoice(None)
    if setting != REGISTRY:
        return BaseChoice(setting)
    if present(REGISTRY_IMAGE):
        return BaseChoice(REGISTRY_IMAGE)
    if pull is None:
        return BaseChoice(None, note=f"{REGISTRY_IMAGE} is not present (not pulled by a read-only command)")
    try:
        pull(REGISTRY_IMAGE)
    except RegistryUnreachable as exc:
        return BaseChoice(None, note=f'images.build_base = "registry": {REGISTRY_IMAGE} could not be pulled ({exc}); '
                                     "building the base from a local Debian bootstrap instead (the offline default)")
    return BaseChoice(REGISTRY_IMAGE)


def resolve_base(client, setting: str | None, progress: Progress | None = None, *,
                 may_pull: bool = True) -> BaseChoice:
    """choose_base on the Docker engine (the caller reports a fallback's note)."""

    def present(ref: str) -> bool:
        return get_image(client, ref) is not None

    def pull(ref: str) -> None:
        import docker.errors
        import requests

        if progress:
            progress("base", f"pulling {ref} (images.build_base = registry)")
        try:
            client.images.pull(ref)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            text = getattr(exc, "explanation", None) or str(exc)
            raise RegistryUnreachable(text.strip().splitlines()[0] if text.strip() else type(exc).__name__) from None

    return choose_base(setting, present=present, pull=pull if may_pull else None)
