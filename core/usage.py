"""CPU and memory figures of a container, from one document of the engine's stats API.

One definition of the arithmetic `docker stats` does, shared by `cronium stats` (what runs now)
and the docker executor's peak figures (`memory_peak`, `cpu_seconds` on the execution record).
Every function takes the decoded JSON of `GET /containers/<id>/stats` and never raises on a
missing part (a stopped container's document is mostly empty): it answers 0 instead.
"""
from __future__ import annotations

from typing import Any, Mapping

Stats = Mapping[str, Any]


def _part(stats: Stats, *keys: str) -> Any:
    value: Any = stats
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def memory_used(stats: Stats) -> int:
    """Bytes in use without the reclaimable page cache (as `docker stats` shows: usage minus
    inactive file pages; `total_inactive_file` on cgroup v1, `inactive_file` on v2)."""
    usage = _part(stats, "memory_stats", "usage") or 0
    inner = _part(stats, "memory_stats", "stats") or {}
    cache = inner.get("total_inactive_file", inner.get("inactive_file", 0)) or 0
    return int(usage - cache) if usage >= cache else int(usage)


def memory_limit(stats: Stats) -> int:
    """The container's memory limit in bytes (the host's memory when it has none)."""
    return int(_part(stats, "memory_stats", "limit") or 0)


def memory_peak(stats: Stats) -> int:
    """The highest memory use the kernel saw (cgroup v1 `max_usage`), else the current usage."""
    return int(_part(stats, "memory_stats", "max_usage") or _part(stats, "memory_stats", "usage") or 0)


def cpu_seconds(stats: Stats) -> float:
    """CPU time the container used so far (user + system), in seconds."""
    return (_part(stats, "cpu_stats", "cpu_usage", "total_usage") or 0) / 1e9


def cpu_percent(stats: Stats) -> float:
    """CPU use between the two samples of the document, in percent of one CPU (100 = one core)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    used = (_part(cpu, "cpu_usage", "total_usage") or 0) - (_part(pre, "cpu_usage", "total_usage") or 0)
    system = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    cpus = cpu.get("online_cpus") or len(_part(cpu, "cpu_usage", "percpu_usage") or ()) or 1
    if used <= 0 or system <= 0:
        return 0.0
    return used / system * cpus * 100.0


def pids(stats: Stats) -> int:
    """Processes (and threads) in the container."""
    return int(_part(stats, "pids_stats", "current") or 0)
