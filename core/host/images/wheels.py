"""The sidecar's wheels: pip-installed on the host for the base image's Python, cached between
builds, so that nothing inside the image build needs a network."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .engine import ImageBuildError, Reporter
from .inputs import Plan


def wheel_cache_dir() -> Path:
    """Where downloaded sidecar wheels are kept between builds."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "cronium" / "wheels"


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


def install_sidecar_site(client, plan: Plan, target: Path, report: Reporter) -> None:
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
