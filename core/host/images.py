"""Build cronium's images locally (no registry) and tell whether they are up to date.

The image set (see docs/architecture.md): ``base`` (Debian bookworm minbase + python3 +
ca-certificates made with debootstrap, or a thin layer on an existing image given as ``base``),
the job images ``python``, ``bash`` and ``node``, the runtime-API ``sidecar`` and ``redis``.
Their build inputs live in the ``cronium.images`` package (the ``images/`` folder), found through
``importlib.resources`` so that a normal install builds the same images as a git checkout.

Every image carries two labels: ``cronium.image=<name>`` and ``cronium.image.inputs=<sha256>``, the
hash of everything that defines it (Dockerfile, copied files, pinned requirements, the debootstrap
recipe, and the image id of its parent ``base``, so that a rebuilt base cascades). A build is
skipped when the tagged image exists with the same inputs hash.

This module is library code: no Click, no config. The caller passes the tags, the docker client and
a ``progress(name, message)`` callback.
"""
from __future__ import annotations

import collections
import hashlib
import importlib.resources
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from ..errors import CroniumError, UsageError

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

#: Where downloaded sidecar wheels are kept between builds.
def wheel_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "cronium" / "wheels"


Progress = Callable[[str, str], None]


class ImageBuildError(CroniumError):
    """Building an image failed; carries the tail of the failing step's output."""

    def __init__(self, name: str, reason: str, *, tail: Sequence[str] = (), hint: str | None = None):
        text = f"building image '{name}' failed: {reason}"
        tail = [line.rstrip("\n") for line in tail if line.strip()]
        if tail:
            text += "\n  last output:\n" + "\n".join("    " + line for line in tail)
        super().__init__(text, hint=hint)
        self.name = name
        self.reason = reason
        self.tail = list(tail)


@dataclass(frozen=True)
class BuildResult:
    name: str
    tag: str
    action: str  # "built" | "up-to-date"
    seconds: float
    image_id: str


@dataclass(frozen=True)
class ImageStatus:
    name: str
    tag: str
    present: bool
    up_to_date: bool
    id: str | None = None
    size: int | None = None  # bytes
    created: str | None = None  # RFC 3339 text from the engine
    detail: str = ""  # why it is not up to date, when known


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


def _images_root():
    """The ``cronium.images`` package as a Traversable (a directory in any normal install)."""
    try:
        return importlib.resources.files("cronium.images")
    except ModuleNotFoundError:
        # Running from a checkout without cronium installed: this file is core/host/images.py.
        here = Path(__file__).resolve().parents[2] / "images"
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


@dataclass
class _Plan:
    name: str
    tag: str
    files: dict[str, bytes]  # build-context path -> bytes (for base from debootstrap: the recipe)
    extra: dict[str, str]
    parent: str | None  # image id given as build arg BASE
    debootstrap: bool = False

    @property
    def inputs(self) -> str:
        return compute_inputs_hash(self.name, self.files, self.extra)


def _plan(name: str, tag: str, *, parent_id: str | None, base: str | None, base_ref_id: str | None) -> _Plan:
    """Everything that defines image `name`, without touching Docker."""
    root = _images_root()
    if name == "base":
        if base:
            files = {"Dockerfile": _read(root, "base", "Dockerfile")}
            files.update(_walk(root.joinpath("common"), "common"))
            return _Plan(name, tag, files, {"source": "image", "ref": base, "ref_id": base_ref_id or "?"},
                         parent=base_ref_id or base)
        files = {"debootstrap.sh": _read(root, "base", "debootstrap.sh")}
        return _Plan(name, tag, files, {"source": "debootstrap", "suite": DEBIAN_SUITE, "mirror": DEBIAN_MIRROR},
                     parent=None, debootstrap=True)
    if name not in IMAGE_NAMES:
        raise UsageError(f"unknown image '{name}'", hint="choose from: " + ", ".join(IMAGE_NAMES))
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
        files["requirements.txt"] = _read(root, "sidecar", "requirements.txt")
        files.update(_sidecar_files())
    return _Plan(name, tag, files, {"parent": parent_id or "?"}, parent=parent_id)


# --- docker helpers --------------------------------------------------------------------------

def _get_image(client, ref: str):
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.NotFound:
        return None


def _labels(image) -> dict[str, str]:
    return (image.attrs.get("Config") or {}).get("Labels") or {}


def _is_current(image, plan: _Plan) -> bool:
    labels = _labels(image)
    return labels.get(LABEL_NAME) == plan.name and labels.get(LABEL_INPUTS) == plan.inputs


class _Reporter:
    """Condense a noisy stream of lines into progress messages; keep a tail for errors."""

    def __init__(self, name: str, progress: Progress | None, *, every: float = 1.0, tail: int = 40):
        self.name = name
        self.progress = progress
        self.every = every
        self.tail: collections.deque[str] = collections.deque(maxlen=tail)
        self._last = float("-inf")

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(self.name, message)
        self._last = time.monotonic()

    def line(self, text: str, *, important: bool = False) -> None:
        text = text.rstrip()
        if not text:
            return
        self.tail.append(text)
        if important or time.monotonic() - self._last >= self.every:
            self.say(text)


# --- building --------------------------------------------------------------------------------

def build_images(client, *, tags: Mapping[str, str] | None = None, names: Iterable[str] | None = None,
                 base: str | None = None, force: bool = False, progress: Progress | None = None,
                 prune: bool = True) -> list[BuildResult]:
    """Build the images that are missing or out of date, in dependency order.

    `tags` maps image name -> tag (missing names get ``default_tags()``); `names` selects images
    (``base`` is always included when another image is selected: it is their parent); `base` is an
    existing image to start from instead of debootstrap; `force` rebuilds the selected images
    (without the layer cache) even when up to date. With `prune`, the images a rebuild replaced are
    removed when nothing uses them any more.
    """
    tags = {**default_tags(), **dict(tags or {})}
    requested = list(IMAGE_NAMES) if names is None else list(dict.fromkeys(names))
    for name in requested:
        if name not in IMAGE_NAMES:
            raise UsageError(f"unknown image '{name}'", hint="choose from: " + ", ".join(IMAGE_NAMES))
    selected = set(requested)
    if selected - {"base"}:
        selected.add("base")

    results: list[BuildResult] = []
    replaced: list[str] = []
    parent_id: str | None = None
    for name in IMAGE_NAMES:
        if name not in selected:
            continue
        started = time.monotonic()
        tag = tags[name]
        base_ref_id = None
        if name == "base" and base:
            base_ref_id = _ensure_base_ref(client, base, progress)
        plan = _plan(name, tag, parent_id=parent_id, base=base, base_ref_id=base_ref_id)
        existing = _get_image(client, tag)
        if existing is not None and _is_current(existing, plan) and not (force and name in requested):
            image_id = existing.id
            action = "up-to-date"
            if progress:
                progress(name, f"{tag} is up to date")
        else:
            if progress:
                why = "forced" if existing is not None and _is_current(existing, plan) else (
                    "missing" if existing is None else "inputs changed")
                progress(name, f"building {tag} ({why})")
            if plan.debootstrap:
                image_id = _build_debootstrap_base(client, plan, progress)
            else:
                image_id = _docker_build(client, plan, progress, nocache=force and name in requested)
            action = "built"
            if existing is not None and existing.id != image_id:
                replaced.append(existing.id)
        if name == "base":
            parent_id = image_id
        results.append(BuildResult(name, tag, action, round(time.monotonic() - started, 3), image_id))
    if prune:
        _remove_replaced(client, replaced)
    return results


def _remove_replaced(client, image_ids: list[str]) -> None:
    """Remove images that a rebuild replaced (children first) once they are dangling; leave any that
    another tag still names or that a container or a child image still uses."""
    import docker.errors

    for image_id in reversed(image_ids):
        try:
            if client.images.get(image_id).attrs.get("RepoTags"):
                continue  # still tagged (e.g. the same image under another tag): not ours to drop
            client.images.remove(image_id, noprune=False)
        except docker.errors.APIError:
            pass  # gone already, or used by a container or by a child image: leave it


def _ensure_base_ref(client, ref: str, progress: Progress | None) -> str:
    """The id of the external base image, pulled when it is not present (needs a registry)."""
    import docker.errors

    image = _get_image(client, ref)
    if image is None:
        if progress:
            progress("base", f"pulling {ref}")
        try:
            image = client.images.pull(ref)
        except docker.errors.APIError as exc:
            raise ImageBuildError("base", f"the base image '{ref}' is not present and could not be pulled: "
                                  f"{exc.explanation or exc}",
                                  hint="load it with `docker load`, or build without --base (debootstrap)") from None
    return image.id


def _docker_build(client, plan: _Plan, progress: Progress | None, *, nocache: bool = False) -> str:
    report = _Reporter(plan.name, progress)
    with tempfile.TemporaryDirectory(prefix=f"cronium-build-{plan.name}-") as ctx:
        ctxdir = Path(ctx)
        for rel, data in plan.files.items():
            path = ctxdir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if plan.name in JOB_IMAGES:
            for sub in ("python", "bash", "node"):
                (ctxdir / "helpers" / sub).mkdir(parents=True, exist_ok=True)
        if plan.name == "sidecar":
            _install_sidecar_site(client, plan, ctxdir / "site", report)
        _normalize_modes(ctxdir)
        labels = {LABEL_NAME: plan.name, LABEL_INPUTS: plan.inputs}
        if plan.name == "base":
            labels[LABEL_SOURCE] = plan.extra.get("ref", "")
        return _run_build(client, ctxdir, plan, labels, report, nocache=nocache)


def _normalize_modes(root: Path) -> None:
    """Context files become root-owned in the image with these modes: 0755 dirs and executables,
    0644 everything else (no setuid, no group/other write), so the Dockerfiles need no chmod -R
    (which would copy every file into another layer)."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for fname in filenames:
            path = os.path.join(dirpath, fname)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, 0o755 if mode & 0o111 else 0o644)


def _run_build(client, ctxdir: Path, plan: _Plan, labels: dict[str, str], report: _Reporter, *,
               nocache: bool) -> str:
    import docker.errors

    image_id = None
    try:
        stream = client.api.build(path=str(ctxdir), tag=plan.tag, buildargs={"BASE": plan.parent or ""},
                                  labels=labels, rm=True, forcerm=True, pull=False, nocache=nocache,
                                  decode=True)
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise ImageBuildError(plan.name, detail.strip(), tail=list(report.tail))
            text = chunk.get("stream")
            if text:
                for line in text.splitlines():
                    report.line(line, important=line.startswith("Step "))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    except docker.errors.APIError as exc:
        raise ImageBuildError(plan.name, f"the Docker engine refused the build: {exc.explanation or exc}",
                              tail=list(report.tail)) from None
    image = _get_image(client, plan.tag)
    if image is None or (image_id and image.id != image_id):
        raise ImageBuildError(plan.name, "the build finished but the tagged image is missing", tail=list(report.tail))
    if not _is_current(image, plan):
        raise ImageBuildError(plan.name, "the built image does not carry the expected labels", tail=list(report.tail))
    report.say(f"built {plan.tag} ({image.id[7:19]})")
    return image.id


# --- the sidecar's wheels --------------------------------------------------------------------

def _probe_python(client, image_id: str) -> dict:
    """python X.Y, libc and machine of an image, by running its python3 once."""
    import docker.errors

    code = ("import json, platform, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
            "'impl': sys.implementation.name, 'libc': platform.libc_ver(), 'machine': platform.machine()}))")
    try:
        out = client.containers.run(image_id, ["python3", "-c", code], remove=True, network_disabled=True,
                                    entrypoint=[], user="0", stdout=True, stderr=True)
    except docker.errors.ContainerError as exc:
        raise ImageBuildError("sidecar", f"could not run python3 in the base image: {exc}") from None
    info = json.loads(out.decode().strip().splitlines()[-1])
    return info


def wheel_platforms(libc: Sequence[str], machine: str) -> list[str]:
    """pip ``--platform`` tags a glibc of that version on that machine accepts (newest first)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    name, version = (list(libc) + ["", ""])[:2]
    if name != "glibc" or not version:
        raise ImageBuildError("sidecar", f"the base image's C library is {name or 'unknown'} {version}: "
                              "only glibc bases get binary wheels",
                              hint="use the default Debian base, or a Debian/Ubuntu based --base image")
    major, minor = (int(x) for x in version.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch in ("x86_64", "i686"):
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def _install_sidecar_site(client, plan: _Plan, target: Path, report: _Reporter) -> None:
    """pip-install the pinned requirements for the base's python into `target`, on the host.

    Wheels come from the cache (no network) when all are there; otherwise they are downloaded into
    the cache first. Nothing inside the image build needs a network.
    """
    info = _probe_python(client, plan.parent or "")
    if info.get("impl") != "cpython":
        raise ImageBuildError("sidecar", f"the base image's python3 is {info.get('impl')}, not CPython")
    pyver = info["version"]
    platforms = wheel_platforms(info.get("libc") or ("", ""), info.get("machine") or "")
    report.say(f"installing the sidecar's wheels for python {pyver} ({platforms[0]})")
    cache = wheel_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cronium-req-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_bytes(plan.files["requirements.txt"])
        common = ["--no-deps", "--only-binary=:all:", "--python-version", pyver, "--implementation", "cp",
                  "--abi", "cp" + pyver.replace(".", ""), "--abi", "abi3", "--abi", "none"]
        for p in platforms:
            common += ["--platform", p]
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        install = pip + ["install", "--no-compile", "--no-index", "--find-links", str(cache), "--target", str(target),
                         *common, "-r", str(req)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_NO_INPUT"] = "1"
        first = subprocess.run(install, capture_output=True, text=True, env=env)
        if first.returncode != 0:
            report.say("downloading wheels into " + str(cache))
            shutil.rmtree(target, ignore_errors=True)
            download = pip + ["download", "-d", str(cache), *common, "-r", str(req)]
            got = subprocess.run(download, capture_output=True, text=True)
            if got.returncode != 0:
                raise ImageBuildError("sidecar", "downloading the sidecar's wheels failed",
                                      tail=(got.stdout + got.stderr).splitlines()[-15:],
                                      hint="the package index must be reachable from this host once "
                                           f"(wheels are cached in {cache})")
            again = subprocess.run(install, capture_output=True, text=True, env=env)
            if again.returncode != 0:
                raise ImageBuildError("sidecar", "installing the sidecar's wheels failed",
                                      tail=(again.stdout + again.stderr).splitlines()[-15:])
    # console scripts carry the host's interpreter path; the image never uses them
    shutil.rmtree(target / "bin", ignore_errors=True)


# --- the debootstrap base --------------------------------------------------------------------

#: debootstrap's per-package lines, grouped into phases for condensed progress.
_DEBOOTSTRAP_PHASES = {"Retrieving": "downloading", "Validating": "downloading", "Extracting": "extracting",
                       "Unpacking": "unpacking", "Configuring": "configuring", "Installing": "installing"}


def _build_debootstrap_base(client, plan: _Plan, progress: Progress | None) -> str:
    import docker.errors

    if shutil.which("debootstrap") is None:
        raise ImageBuildError("base", "debootstrap is not installed",
                              hint="install it with apt-get install debootstrap (or build from an existing "
                                   "image with --base IMAGE)")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise ImageBuildError("base", "debootstrap needs root to build the base file system",
                              hint="run `cronium images build` as root once, or build with --base IMAGE")
    report = _Reporter("base", progress, every=2.0)
    workdir = Path(tempfile.mkdtemp(prefix="cronium-base-"))
    try:
        recipe = workdir / "debootstrap.sh"
        recipe.write_bytes(plan.files["debootstrap.sh"])
        rootfs = workdir / "rootfs"
        rootfs.mkdir()
        report.say(f"debootstrap {DEBIAN_SUITE} from {DEBIAN_MIRROR} (about a minute)")
        proc = subprocess.Popen(["sh", str(recipe), str(rootfs), DEBIAN_SUITE, DEBIAN_MIRROR],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        phase = None
        count = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            word = line[3:].split(" ", 1)[0] if line.startswith(("I: ", "W: ", "E: ")) else ""
            if word in _DEBOOTSTRAP_PHASES and len(line.split()) >= 3:  # "I: Unpacking <package> …"
                current = _DEBOOTSTRAP_PHASES[word]
                report.tail.append(line)
                if current != phase:
                    phase, count = current, 0
                if word != "Validating":
                    count += 1
                if count == 1 or time.monotonic() - report._last >= report.every:
                    report.say(f"{phase} packages: {count} ({line.split()[2]})")
            else:
                report.line(line, important=line.startswith(("E: ", "W: ")))
        rc = proc.wait()
        if rc != 0:
            raise ImageBuildError("base", f"debootstrap failed (exit status {rc})", tail=list(report.tail)[-20:],
                                  hint=f"check that {DEBIAN_MIRROR} is reachable from this host")
        report.say("importing the root file system")
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
            f"LABEL {LABEL_NAME}={plan.name}",
            f"LABEL {LABEL_INPUTS}={plan.inputs}",
            f"LABEL {LABEL_SOURCE}=debootstrap",
        ]
        tar_errors = open(workdir / "tar.err", "w+b")
        tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", "-", "."],
                               stdout=subprocess.PIPE, stderr=tar_errors)
        repository, _, tag = plan.tag.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = plan.tag, "latest"
        saved_timeout = client.api.timeout
        client.api.timeout = max(saved_timeout or 0, 900)  # the engine answers once the whole tar is in
        try:
            out = client.api.import_image_from_stream(tar.stdout, repository=repository, tag=tag, changes=changes)
        except docker.errors.APIError as exc:
            tar.kill()
            raise ImageBuildError("base", f"docker import failed: {exc.explanation or exc}") from None
        finally:
            client.api.timeout = saved_timeout
            if tar.stdout:
                tar.stdout.close()
            tar_rc = tar.wait()
        tar_errors.seek(0)
        tar_text = tar_errors.read().decode(errors="replace")
        tar_errors.close()
        if tar_rc != 0:
            raise ImageBuildError("base", f"tar of the root file system failed: {tar_text[-500:]}")
        text = out if isinstance(out, str) else json.dumps(out)
        if '"error"' in text:
            raise ImageBuildError("base", f"docker import failed: {text[-500:]}")
        image = _get_image(client, plan.tag)
        if image is None or not _is_current(image, plan):
            raise ImageBuildError("base", "docker import finished but the tagged image is missing or unlabelled")
        _smoke_base(client, image.id)
        report.say(f"built {plan.tag} ({image.id[7:19]}, {image.attrs.get('Size', 0) // 2**20} MiB)")
        return image.id
    finally:
        _remove_rootfs(workdir)


def _smoke_base(client, image_id: str) -> None:
    import docker.errors

    try:
        client.containers.run(image_id, ["python3", "-c", "import ssl, json; ssl.create_default_context()"],
                              remove=True, network_disabled=True)
    except docker.errors.ContainerError as exc:
        raise ImageBuildError("base", f"the imported base does not run python3: {exc}") from None


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    except OSError:
        return []
    return [p for p in points if p.startswith(prefix)]


def _remove_rootfs(workdir: Path) -> None:
    """Remove the debootstrap tree, unmounting anything a failed debootstrap left mounted in it."""
    for point in sorted(_mounts_under(workdir), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    if _mounts_under(workdir):
        return  # never recurse into a mounted /proc or /dev; leave the folder for a human
    shutil.rmtree(workdir, ignore_errors=True)


# --- status ----------------------------------------------------------------------------------

def image_status(client, tags: Mapping[str, str] | None = None, *, base: str | None = None) -> list[ImageStatus]:
    """Presence and freshness of every image (no build, no pull)."""
    tags = {**default_tags(), **dict(tags or {})}
    statuses: list[ImageStatus] = []
    parent_id: str | None = None
    for name in IMAGE_NAMES:
        tag = tags[name]
        image = _get_image(client, tag)
        detail = ""
        up_to_date = False
        try:
            base_ref_id = None
            if name == "base" and base:
                ref = _get_image(client, base)
                base_ref_id = ref.id if ref is not None else None
            plan = _plan(name, tag, parent_id=parent_id, base=base, base_ref_id=base_ref_id)
        except CroniumError as exc:
            plan = None
            detail = exc.message
        if image is None:
            detail = detail or "missing"
        elif plan is not None:
            up_to_date = _is_current(image, plan)
            if not up_to_date:
                detail = "not built by cronium" if LABEL_INPUTS not in _labels(image) else "inputs changed"
        if name == "base":
            parent_id = image.id if image is not None else None
        statuses.append(ImageStatus(
            name=name, tag=tag, present=image is not None, up_to_date=up_to_date,
            id=image.id if image is not None else None,
            size=image.attrs.get("Size") if image is not None else None,
            created=image.attrs.get("Created") if image is not None else None,
            detail=detail,
        ))
    return statuses


__all__ = [
    "IMAGE_NAMES", "JOB_IMAGES", "LABEL_NAME", "LABEL_INPUTS", "BuildResult", "ImageStatus", "ImageBuildError",
    "default_tags", "compute_inputs_hash", "build_images", "image_status", "wheel_platforms", "wheel_cache_dir",
    "sidecar_source_dir",
]
