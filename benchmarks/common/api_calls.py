"""Count the Docker engine API calls a cronium runtime makes, and the time they take.

`ApiCallCounter(rt.docker.api)` wraps the docker-py client's `request` (every API call goes
through it: create, start, attach, inspect, wait, stats, remove, network calls) and keeps, per
call kind (`POST /containers/{id}/start`, …), the number of calls and their summed wall time.
Ids and names in the path are replaced by `{id}`, query strings dropped. Measurement only: the
benchmark's own baseline clients are not wrapped.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

_VERSION = re.compile(r"^/v\d+\.\d+")
#: Path segments after these collections are object ids or names.
_COLLECTIONS = ("containers", "networks", "volumes", "images", "exec")


def call_kind(method: str, url: str) -> str:
    """`POST /containers/{id}/start` for `POST http://…/v1.41/containers/abc123/start?x=1`."""
    path = _VERSION.sub("", urlsplit(url).path)
    parts = path.strip("/").split("/")
    out = []
    for i, part in enumerate(parts):
        if i > 0 and parts[i - 1] in _COLLECTIONS and part not in ("create", "json", "prune"):
            out.append("{id}")
        else:
            out.append(part)
    return f"{method.upper()} /" + "/".join(out)


class ApiCallCounter:
    """Counts the calls made through one docker-py `APIClient` while installed."""

    def __init__(self, api) -> None:
        self._api = api
        self._original = api.request
        self._lock = threading.Lock()
        self.calls: dict[str, list[float]] = {}  # kind -> [count, seconds]

    def __enter__(self) -> "ApiCallCounter":
        original = self._original

        def request(method, url, *args, **kwargs):
            t = time.perf_counter()
            try:
                return original(method, url, *args, **kwargs)
            finally:
                self._note(call_kind(method, url), time.perf_counter() - t)

        self._api.request = request
        return self

    def __exit__(self, *exc) -> None:
        self._api.request = self._original

    def _note(self, kind: str, seconds: float) -> None:
        with self._lock:
            entry = self.calls.setdefault(kind, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def reset(self) -> None:
        with self._lock:
            self.calls = {}

    def per_job(self, jobs: int) -> dict[str, Any]:
        """{"total": calls per job, "seconds": summed call time per job, "by_kind": {kind: {...}}}."""
        with self._lock:
            snapshot = {k: tuple(v) for k, v in self.calls.items()}
        jobs = max(1, jobs)
        by_kind = {k: {"calls": round(n / jobs, 2), "seconds": round(s / jobs, 4)}
                   for k, (n, s) in sorted(snapshot.items(), key=lambda kv: -kv[1][0])}
        return {"total": round(sum(n for n, _ in snapshot.values()) / jobs, 2),
                "seconds": round(sum(s for _, s in snapshot.values()) / jobs, 3), "by_kind": by_kind}


def describe(per_job: dict[str, Any], limit: int = 14) -> str:
    """One line per call kind, most frequent first."""
    lines = [f"{per_job['total']:.1f} engine API calls per job ({per_job['seconds']:.2f} s of call time):"]
    for kind, v in list(per_job["by_kind"].items())[:limit]:
        lines.append(f"    {v['calls']:5.2f} × {kind}  ({v['seconds'] * 1000:.0f} ms)")
    return "\n".join(lines)
