"""What defines each image: the image set and its labels, the inputs hash, and locating the build
inputs in the ``cronium.images`` package (a plan per image, made without touching Docker)."""
from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from ...errors import UsageError
from .engine import ImageBuildError

#: Build order: ``base`` first, every other image is built FROM it.
IMAGE_NAMES: tuple[str, ...] = ("base", "python", "bash", "node", "redis", "sidecar")
JOB_IMAGES: tuple[str, ...] = ("python", "bash", "node")

LABEL_NAME = "cronium.image"
LABEL_INPUTS = "cronium.image.inputs"
LABEL_SOURCE = "cronium.image.source"

#: Bumped when the way inputs are hashed (or labels/build steps outside the files) changes.
HASH_VERSION = "cronium-images/1"

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def check_image_name(name: str) -> None:
    """A usage error unless `name` is one of IMAGE_NAMES."""
    if name not in IMAGE_NAMES:
        raise UsageError(f"unknown image '{name}'", hint="choose from: " + ", ".join(IMAGE_NAMES))


def default_tags(repository: str = "cronium", tag: str = "latest") -> dict[str, str]:
    """``{"base": "cronium/base:latest", ...}``."""
    return {name: f"{repository}/{name}:{tag}" for name in IMAGE_NAMES}


# --- input hashing ---------------------------------------------------------------------------

def compute_inputs_hash(name: str, files: Mapping[str, bytes], extra: Mapping[str, str] | None = None) -> str:
    """The inputs hash of one image: its name, its build-context files (path -> bytes, including
    the Dockerfile or the recipe) and extra facts (the parent image id, the base reference, …).

    Pure function (no Docker, no file system); every field is length-prefixed so that no two
    different input sets share an encoding.
    """
    h = hashlib.sha256()

    def put(*parts: bytes) -> None:
        for part in parts:
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)

    put(HASH_VERSION.encode(), b"name", name.encode())
    for key in sorted(extra or {}):
        put(b"extra", key.encode(), str((extra or {})[key]).encode())
    for path in sorted(files):
        put(b"file", path.encode(), bytes(files[path]))
    return h.hexdigest()


# --- locating the build inputs --------------------------------------------------------------

_SKIP_NAMES = {"__pycache__", "node_modules", ".pytest_cache", ".mypy_cache"}


def images_root():
    """The ``cronium.images`` package as a Traversable (a directory in any normal install)."""
    try:
        return importlib.resources.files("cronium.images")
    except ModuleNotFoundError:
        # Running from a checkout without cronium installed: this file is core/host/images/inputs.py.
        here = Path(__file__).resolve().parents[3] / "images"
        if here.is_dir():
            return here
        raise UsageError("the cronium.images package (Dockerfiles and build scripts) is not installed",
                         hint="reinstall cronium (pip install cronium, or pip install -e . in a checkout)")


def _walk(node, prefix: str, *, suffixes: tuple[str, ...] | None = None) -> Iterator[tuple[str, bytes]]:
    """(relative path, bytes) of every file under a Traversable, sorted, skipping caches/dotfiles."""
    if not node.is_dir():
        return
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name.startswith(".") or child.name in _SKIP_NAMES or child.name.endswith((".pyc", ".pyo")):
            continue
        rel = f"{prefix}/{child.name}" if prefix else child.name
        if child.is_dir():
            yield from _walk(child, rel, suffixes=suffixes)
        elif suffixes is None or child.name.endswith(suffixes):
            yield rel, child.read_bytes()


def _read(root, *parts: str) -> bytes:
    node = root
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        raise UsageError(f"missing build input images/{'/'.join(parts)} in the cronium.images package",
                         hint="reinstall cronium; the package data is incomplete")
    return node.read_bytes()


def sidecar_source_dir() -> Path:
    """The directory of the ``cronium.sidecar`` package that goes into the sidecar image."""
    try:
        spec = importlib.util.find_spec("cronium.sidecar")
    except ModuleNotFoundError:
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc)
        if path.is_dir() and any(path.glob("*.py")):
            return path
    raise ImageBuildError("sidecar", "the cronium.sidecar package was not found (or has no *.py files)",
                          hint="install cronium with its sidecar package (pip install -e . in a checkout)")


def _sidecar_files() -> dict[str, bytes]:
    src = sidecar_source_dir()
    files: dict[str, bytes] = {"lib/cronium/__init__.py": b""}
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if any(part in _SKIP_NAMES or part.startswith(".") for part in rel.parts):
            continue
        if rel.parts[0] in ("tests", "test"):
            continue
        files["lib/cronium/sidecar/" + rel.as_posix()] = path.read_bytes()
    return files


# --- pins ----------------------------------------------------------------------------------------

#: The tested version of every dependency (images/constraints.txt; the repository root links to it).
CONSTRAINTS_FILE = "constraints.txt"
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(\S+))?\s*$")


def normalize_name(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): `PyJWT` and `typing_extensions` ->
    `pyjwt`, `typing-extensions`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(text: str, source: str) -> dict[str, tuple[str, str | None]]:
    """`normalized name -> (name as written, version or None)` of a requirements/constraints text
    of plain `name` or `name==version` lines (comments and blank lines ignored)."""
    pins: dict[str, tuple[str, str | None]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN_RE.match(line)
        if match is None:
            raise UsageError(f"{source} line {number}: {raw.strip()!r} is not `name` or `name==version`")
        pins[normalize_name(match.group(1))] = (match.group(1), match.group(2))
    return pins


def constraints(root=None) -> dict[str, str]:
    """`normalized name -> version` from the constraints file."""
    text = _read(root or images_root(), CONSTRAINTS_FILE).decode()
    return {key: version for key, (_, version) in parse_pins(text, f"images/{CONSTRAINTS_FILE}").items() if version}


def pinned_requirements(text: str, pins: dict[str, str], source: str) -> bytes:
    """The requirements `text` (names) with every name pinned to its version in `pins`."""
    lines = []
    for key, (name, version) in parse_pins(text, source).items():
        pinned = pins.get(key)
        if pinned is None or (version is not None and version != pinned):
            why = "has no pin" if pinned is None else f"is pinned to {pinned}, not {version}"
            raise UsageError(f"{source}: {name} {why} in images/{CONSTRAINTS_FILE}",
                             hint=f"pin the tested version there ({name}==VERSION); {source} lists names only")
        lines.append(f"{name}=={pinned}\n")
    return "".join(lines).encode()


@dataclass
class Plan:
    name: str
    tag: str
    files: dict[str, bytes]  # build-context path -> bytes (for base from debootstrap: the recipe)
    extra: dict[str, str]
    parent: str | None  # image id given as build arg BASE
    debootstrap: bool = False

    @property
    def inputs(self) -> str:
        return compute_inputs_hash(self.name, self.files, self.extra)


def make_plan(name: str, tag: str, *, parent_id: str | None, base: str | None, base_ref_id: str | None,
              upstream: str | None = None) -> Plan:
    """Everything that defines image `name`, without touching Docker. `parent_id` is the image it is
    built on: cronium's base, or with `upstream` (images.build_base = registry) that official image."""
    root = images_root()
    if name == "base":
        if base:
            files = {"Dockerfile": _read(root, "base", "Dockerfile")}
            files.update(_walk(root.joinpath("common"), "common"))
            return Plan(name, tag, files, {"source": "image", "ref": base, "ref_id": base_ref_id or "?"},
                        parent=base_ref_id or base)
        files = {"debootstrap.sh": _read(root, "base", "debootstrap.sh")}
        return Plan(name, tag, files, {"source": "debootstrap", "suite": DEBIAN_SUITE, "mirror": DEBIAN_MIRROR},
                    parent=None, debootstrap=True)
    check_image_name(name)
    files = {"Dockerfile": _read(root, name, "Dockerfile")}
    files.update(_walk(root.joinpath("common"), "common"))
    helpers = root.joinpath("helpers")
    if name in JOB_IMAGES:
        # Every job image has python3, so every one gets the Python and the shell helper;
        # only the node image gets the node helper. Missing helper folders give empty folders.
        files.update(_walk(helpers.joinpath("python"), "helpers/python"))
        files.update(_walk(helpers.joinpath("bash"), "helpers/bash"))
        if name == "node":
            files.update(_walk(helpers.joinpath("node"), "helpers/node"))
    if name == "sidecar":
        files["requirements.txt"] = pinned_requirements(_read(root, "sidecar", "requirements.txt").decode(),
                                                        constraints(root), "images/sidecar/requirements.txt")
        files.update(_sidecar_files())
    extra = {"parent": parent_id or "?"}
    if upstream:
        extra["upstream"] = upstream
    return Plan(name, tag, files, extra, parent=parent_id)


# --- is an image current with its plan? ------------------------------------------------------

def image_labels(image) -> dict[str, str]:
    return (image.attrs.get("Config") or {}).get("Labels") or {}


def is_current(image, plan: Plan) -> bool:
    labels = image_labels(image)
    return labels.get(LABEL_NAME) == plan.name and labels.get(LABEL_INPUTS) == plan.inputs
