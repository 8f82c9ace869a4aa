"""Where the ``base`` image comes from: the one setting ``images.build_base`` (or ``cronium images
build --base``).

- ``debootstrap`` (the default; ``""`` means the same): a Debian bookworm root file system made on
  this host with debootstrap. Needs only Debian's package mirror, no registry.
- ``registry``: every image on the official Debian bookworm image that fits it (REGISTRY_BASES: the
  Python image for base, python, bash and sidecar, the Node image for node, Debian's for redis),
  pulled when not present; each image's own Dockerfile and images/common/job-image.sh give it the
  same users, dirs and helpers as on the bootstrap. When one cannot be pulled (no registry
  reachable), the build says so and falls back to debootstrap for all of them.
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
#: The official Node.js image (an LTS line) on Debian bookworm, with its own node and npm.
REGISTRY_NODE_IMAGE = "node:22-bookworm-slim"
#: Plain Debian bookworm, for an image that needs no python3.
REGISTRY_DEBIAN_IMAGE = "debian:bookworm-slim"
#: The one definition of which official image each of cronium's images is built on with `registry`.
#: Job images need python3 (the helper is compiled at build time; every job image has `import
#: cronium`), so bash takes the Python image; node gets python3 from Debian on the Node image.
REGISTRY_BASES: dict[str, str] = {
    "base": REGISTRY_IMAGE,
    "python": REGISTRY_IMAGE,
    "bash": REGISTRY_IMAGE,
    "node": REGISTRY_NODE_IMAGE,
    "redis": REGISTRY_DEBIAN_IMAGE,
    "sidecar": REGISTRY_IMAGE,
}


@dataclass(frozen=True)
class BaseChoice:
    ref: str | None  # the image to build the base on; None: debootstrap
    note: str | None = None  # why `registry` fell back to debootstrap
    upstreams: tuple[tuple[str, str], ...] = ()  # `registry`: (image name, official image) pairs

    def upstream(self, name: str) -> str | None:
        """The official image `name` is built on, or None: built on cronium's own base."""
        return dict(self.upstreams).get(name)


def registry_choice() -> BaseChoice:
    """The `registry` choice: every image on its official image (REGISTRY_BASES)."""
    return BaseChoice(REGISTRY_BASES["base"], upstreams=tuple(REGISTRY_BASES.items()))


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
    for ref in dict.fromkeys(REGISTRY_BASES.values()):
        if present(ref):
            continue
        if pull is None:
            return BaseChoice(None, note=f"{ref} is not present (not pulled by a read-only command)")
        try:
            pull(ref)
        except RegistryUnreachable as exc:
            return BaseChoice(None, note=f'images.build_base = "registry": {ref} could not be pulled ({exc}); '
                                         "building every image on a local Debian bootstrap instead (the offline default)")
    return registry_choice()


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
