"""The ``base`` image from scratch: a Debian root file system made with debootstrap, imported into
the engine with cronium's labels."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .engine import ImageBuildError, Progress, Reporter, get_image
from .inputs import (
    DEBIAN_MIRROR,
    DEBIAN_SUITE,
    LABEL_INPUTS,
    LABEL_NAME,
    LABEL_SOURCE,
    Plan,
    is_current,
)

#: debootstrap's per-package lines, grouped into phases for condensed progress.
_DEBOOTSTRAP_PHASES = {"Retrieving": "downloading", "Validating": "downloading", "Extracting": "extracting",
                       "Unpacking": "unpacking", "Configuring": "configuring", "Installing": "installing"}


def build_debootstrap_base(client, plan: Plan, progress: Progress | None) -> str:
    """Build the ``base`` image of `plan` with debootstrap (needs root); returns its image id."""
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("base", "debootstrap is not installed",
                              hint="install it with apt-get install debootstrap (or build from an existing "
                                   "image with --base IMAGE)")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise ImageBuildError("base", "debootstrap needs root to build the base file system",
                              hint="run `cronium images build` as root once, or build with --base IMAGE")
    report = Reporter("base", progress, every=2.0)
    workdir = Path(tempfile.mkdtemp(prefix="cronium-base-"))
    try:
        recipe = workdir / "debootstrap.sh"
        recipe.write_bytes(plan.files["debootstrap.sh"])
        rootfs = workdir / "rootfs"
        rootfs.mkdir()
        _debootstrap(recipe, rootfs, report)
        report.say("importing the root file system")
        _import_rootfs(client, plan, rootfs, workdir)
        image = get_image(client, plan.tag)
        if image is None or not is_current(image, plan):
            raise ImageBuildError("base", "docker import finished but the tagged image is missing or unlabelled")
        _smoke_base(client, image.id)
        report.say(f"built {plan.tag} ({image.id[7:19]}, {image.attrs.get('Size', 0) // 2**20} MiB)")
        return image.id
    finally:
        _remove_rootfs(workdir)


def _debootstrap(recipe: Path, rootfs: Path, report: Reporter) -> None:
    """Run the recipe into `rootfs`, condensing debootstrap's per-package lines into phase counts."""
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


def _import_rootfs(client, plan: Plan, rootfs: Path, workdir: Path) -> None:
    """`docker import` of `rootfs` (streamed through tar) as `plan.tag`, with cronium's labels."""
    import docker.errors

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
