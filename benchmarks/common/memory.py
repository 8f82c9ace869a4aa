"""Memory of containers: from their memory cgroup, or `docker stats` as a fallback."""
from __future__ import annotations

import re
import subprocess
from typing import Sequence

from .machine import read_text


def cgroup_memory(container_id: str) -> dict[str, int] | None:
    """{"usage": bytes charged to the container, "rss": anonymous memory} from its memory cgroup
    (v1 cgroupfs or systemd layouts, or v2); None when not found (use `docker stats`)."""
    v1 = [f"/sys/fs/cgroup/memory/docker/{container_id}",
          f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope"]
    for base in v1:
        usage = read_text(base + "/memory.usage_in_bytes").strip()
        if usage:
            stat = _parse_stat(read_text(base + "/memory.stat"))
            return {"usage": int(usage), "rss": stat.get("total_rss", stat.get("rss", 0)),
                    "cache": stat.get("total_cache", stat.get("cache", 0))}
    v2 = [f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope", f"/sys/fs/cgroup/docker/{container_id}"]
    for base in v2:
        usage = read_text(base + "/memory.current").strip()
        if usage:
            stat = _parse_stat(read_text(base + "/memory.stat"))
            return {"usage": int(usage), "rss": stat.get("anon", 0), "cache": stat.get("file", 0)}
    return None


def _parse_stat(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def docker_stats_memory(names: Sequence[str]) -> dict[str, int]:
    """Fallback: `docker stats --no-stream` memory usage (bytes) by container name."""
    if not names:
        return {}
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names],
                         capture_output=True, text=True, timeout=300)
    result = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            result[parts[0]] = _parse_docker_size(parts[1])
    return result


def _parse_docker_size(text: str) -> int:
    m = re.match(r"([\d.]+)([KMGT]?i?B)", text)
    if not m:
        return 0
    scale = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "KB": 1000, "MB": 1000**2,
             "GB": 1000**3}.get(m.group(2), 1)
    return int(float(m.group(1)) * scale)


MB = 1024 * 1024


#: Host processes a job costs, by what their command line says (first match wins).
PROCESS_KINDS = (("containerd-shim", "containerd shim"), ("cronium.sidecar", "sidecar"),
                 ("docker-init", "docker-init"), ("docker-proxy", "docker-proxy"))


def process_memory() -> dict[str, dict[str, float]]:
    """kind -> {"count", "rss_mb", "pss_mb"} (per process, averages) of the host processes in
    `PROCESS_KINDS`, read from /proc (PSS shares each page among the processes mapping it, so it
    is what one more process costs; needs root to read other users' smaps_rollup)."""
    import os

    found: dict[str, list[tuple[int, int]]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode("utf-8", "replace")
        except OSError:
            continue
        kind = next((k for needle, k in PROCESS_KINDS if needle in cmd), None)
        if kind is None:
            continue
        rss = re.search(r"^VmRSS:\s+(\d+)", read_text(f"/proc/{pid}/status"), re.M)
        pss = re.search(r"^Pss:\s+(\d+)", read_text(f"/proc/{pid}/smaps_rollup"), re.M)
        found.setdefault(kind, []).append((int(rss.group(1)) if rss else 0, int(pss.group(1)) if pss else 0))
    return {kind: {"count": len(v), "rss_mb": round(sum(r for r, _ in v) / len(v) / 1024, 1),
                   "pss_mb": round(sum(p for _, p in v) / len(v) / 1024, 1)} for kind, v in found.items()}
