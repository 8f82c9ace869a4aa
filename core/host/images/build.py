"""Building the images in dependency order, skipping those whose inputs did not change."""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .base_source import BaseChoice, resolve_base
from .debootstrap import build_debootstrap_base
from .engine import ImageBuildError, Progress, Reporter, get_image
from .inputs import (
    IMAGE_NAMES,
    JOB_IMAGES,
    LABEL_INPUTS,
    LABEL_NAME,
    LABEL_SOURCE,
    Plan,
    check_image_name,
    default_tags,
    is_current,
    make_plan,
)
from .wheels import install_sidecar_site


@dataclass(frozen=True)
class BuildResult:
    name: str
    tag: str
    action: str  # "built" | "up-to-date"
    seconds: float
    image_id: str


def build_images(client, *, tags: Mapping[str, str] | None = None, names: Iterable[str] | None = None,
                 base: str | BaseChoice | None = None, force: bool = False, progress: Progress | None = None,
                 prune: bool = True) -> list[BuildResult]:
    """Build the images that are missing or out of date, in dependency order.

    `tags` maps image name -> tag (missing names get ``default_tags()``); `names` selects images
    (``base`` is always included when another image is selected: it is their parent); `base` is the
    ``images.build_base`` setting (``debootstrap``/None, ``registry``, or an image to start from; see
    ``base_source``) or the BaseChoice made of it; `force` rebuilds the selected images
    (without the layer cache) even when up to date. With `prune`, the images a rebuild replaced are
    removed when nothing uses them any more.
    """
    tags = {**default_tags(), **dict(tags or {})}
    choice = base if isinstance(base, BaseChoice) else resolve_base(client, base, progress)
    if choice.note and progress and not isinstance(base, BaseChoice):
        progress("base", choice.note)
    base = choice.ref
    requested = list(IMAGE_NAMES) if names is None else list(dict.fromkeys(names))
    for name in requested:
        check_image_name(name)
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
        plan = _plan(client, choice, name, tag, parent_id, progress)
        existing = get_image(client, tag)
        if existing is not None and is_current(existing, plan) and not (force and name in requested):
            image_id = existing.id
            action = "up-to-date"
            if progress:
                progress(name, f"{tag} is up to date")
        else:
            if progress:
                why = "forced" if existing is not None and is_current(existing, plan) else (
                    "missing" if existing is None else "inputs changed")
                progress(name, f"building {tag} ({why})")
            if plan.debootstrap:
                image_id = build_debootstrap_base(client, plan, progress)
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


def _plan(client, choice: BaseChoice, name: str, tag: str, base_id: str | None, progress: Progress | None) -> Plan:
    """The plan of `name`: on cronium's base (`base_id`), or on its official image (`registry`)."""
    upstream = choice.upstream(name) if name != "base" else None
    if upstream:
        return make_plan(name, tag, parent_id=_ensure_base_ref(client, upstream, progress), base=choice.ref,
                         base_ref_id=None, upstream=upstream)
    base_ref_id = _ensure_base_ref(client, choice.ref, progress) if name == "base" and choice.ref else None
    return make_plan(name, tag, parent_id=base_id, base=choice.ref, base_ref_id=base_ref_id)


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

    image = get_image(client, ref)
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


def _docker_build(client, plan: Plan, progress: Progress | None, *, nocache: bool = False) -> str:
    report = Reporter(plan.name, progress)
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
            install_sidecar_site(client, plan, ctxdir / "site", report)
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


def _run_build(client, ctxdir: Path, plan: Plan, labels: dict[str, str], report: Reporter, *,
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
    image = get_image(client, plan.tag)
    if image is None or (image_id and image.id != image_id):
        raise ImageBuildError(plan.name, "the build finished but the tagged image is missing", tail=list(report.tail))
    if not is_current(image, plan):
        raise ImageBuildError(plan.name, "the built image does not carry the expected labels", tail=list(report.tail))
    report.say(f"built {plan.tag} ({image.id[7:19]})")
    return image.id
