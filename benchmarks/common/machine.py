"""Facts about the machine a run is on (recorded with every result), read from /proc and Docker."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]


def read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def meminfo() -> dict[str, int]:
    out = {}
    for line in read_text("/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[name] = int(parts[0]) * 1024
    return out


def host_memory_used() -> int:
    """Bytes in use on the host: MemTotal − MemAvailable."""
    m = meminfo()
    return m.get("MemTotal", 0) - m.get("MemAvailable", 0)


def _git_head() -> str | None:
    """The commit the working tree is on, read from .git (no git command is run)."""
    git = PROJECT / ".git"
    head = read_text(str(git / "HEAD")).strip()
    if head.startswith("ref: "):
        ref = head[5:]
        value = read_text(str(git / ref)).strip()
        if not value:
            for line in read_text(str(git / "packed-refs")).splitlines():
                if line.endswith(" " + ref):
                    value = line.split()[0]
        return value or None
    return head or None


def machine_info(client=None) -> dict[str, Any]:
    cpu = ""
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    os_name = ""
    for line in read_text("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_model": cpu or platform.processor(),
        "cpu_cores": os.cpu_count(),
        "memory_bytes": meminfo().get("MemTotal"),
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
        "git_head": _git_head(),
    }
    try:
        import cronium.core

        info["cronium_version"] = cronium.core.__version__
    except Exception:
        pass
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True,
                             text=True, timeout=10)
        info["docker_cli_version"] = out.stdout.strip()
    except Exception:
        pass
    if client is not None:
        try:
            v = client.version()
            info["docker_server_version"] = v.get("Version")
            info["docker_api_version"] = v.get("ApiVersion")
            d = client.info()
            info["docker_storage_driver"] = d.get("Driver")
            info["docker_cgroup"] = f"{d.get('CgroupDriver')} v{d.get('CgroupVersion')}"
            info["containers_running_at_start"] = d.get("ContainersRunning")
        except Exception as exc:
            info["docker_error"] = str(exc)
    return info
