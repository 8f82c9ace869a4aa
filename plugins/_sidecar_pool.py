"""A per-process pool of started sidecars that wait for their settings (not a plugin itself).

Booting a sidecar (container start + importing Sanic) takes most of a second. A long-lived
orchestrating process (a worker, `cronium serve`, an embedding application) keeps a few sidecars
started ahead of time on the services network, with everything imported, blocked reading their
settings from stdin. A job claims one: rename it to `cronium-runtime-<execution>`, connect it to
the job network with the alias `runtime-api`, send the settings — ready in about 0.1 s — and a
replacement starts in the background.

Pooled sidecars are this process's resources like any other: labelled `cronium.managed` with this
process as `cronium.owner` and with this installation's `cronium.installation` (so the sidecar
plugin's `reap_orphans` removes them if the process dies), removed when the runtime closes, and —
once claimed — removed with the job that claimed them. Their `cronium.execution` label stays the
pool name they were created with; a claimed one is known by its name, `cronium-runtime-<execution>`.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from typing import Callable

from cronium.plugins import _docker

#: Names of idle pooled sidecars (a claimed one is renamed `cronium-runtime-<execution>`).
POOL_PREFIX = "cronium-pool-"
#: Slack added to a pooled sidecar's deadline label (it may wait idle, then serve a long job).
IDLE_ALLOWANCE = 3600


def pool_key(image: str, user: str | None, host_config: dict) -> str:
    """Sidecars are interchangeable only if they were created with the same image and options."""
    text = json.dumps({"image": image, "user": user, "host": host_config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SidecarPool:
    def __init__(self, runtime, size: int):
        self.runtime = runtime
        self.size = size
        self._idle: dict[str, list[str]] = {}  # key -> container ids, oldest first
        self._filling: dict[str, int] = {}
        self._deferred: dict[str, tuple[str, Callable[[str], str]]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def refill_later(self, execution_id: str, key: str, create: Callable[[str], str]) -> None:
        """Remember to top up `key` when `refill_now(execution_id)` is called."""
        with self._lock:
            self._deferred[execution_id] = (key, create)

    def refill_now(self, execution_id: str) -> None:
        with self._lock:
            deferred = self._deferred.pop(execution_id, None)
        if deferred is not None:
            self.refill(*deferred)

    def take(self, key: str) -> str | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop(0) if idle else None

    def refill(self, key: str, create: Callable[[str], str]) -> None:
        """Start replacements in the background until `size` sidecars of this key are idle or
        starting. `create(name)` creates and starts one and returns its container id."""
        with self._lock:
            missing = self.size - len(self._idle.get(key, [])) - self._filling.get(key, 0)
            if self._closed or missing <= 0:
                return
            self._filling[key] = self._filling.get(key, 0) + missing
            self._threads = [t for t in self._threads if t.is_alive()]
            for _ in range(missing):  # started under the lock: close() never joins an unstarted one
                t = threading.Thread(target=self._fill_one, args=(key, create), name="cronium-pool", daemon=True)
                t.start()
                self._threads.append(t)

    def _fill_one(self, key: str, create: Callable[[str], str]) -> None:
        container_id = None
        name = f"{POOL_PREFIX}{secrets.token_hex(6)}"
        try:
            container_id = create(name)
        except Exception:
            # A failed warm start only means the next job boots its sidecar cold — but the
            # container may exist (created, then the start failed or the engine went away).
            self._remove(name)
        finally:
            with self._lock:
                self._filling[key] -= 1
                if container_id and not self._closed:
                    self._idle.setdefault(key, []).append(container_id)
                    container_id = None
        if container_id:  # closed while we were creating it
            self._remove(container_id)

    def _remove(self, ident: str) -> None:
        try:
            _docker.remove(self.runtime.docker, "container", ident, wait=30)
        except Exception:
            pass  # the reaper removes it once this process is gone (our owner label)

    def close(self) -> None:
        """Remove every idle sidecar of this pool. Also looks them up by label, so that one whose
        creation failed halfway (its id never reached us) is not left behind either."""
        with self._lock:
            self._closed = True
            idle = [cid for ids in self._idle.values() for cid in ids]
            self._idle.clear()
            threads, self._threads = self._threads, []
        for t in threads:
            t.join(30)
        try:
            # Claimed ones keep the pool label but were renamed (cronium-runtime-<exec>): not these.
            idle += [c["Id"] for c in _docker.labelled(self.runtime.docker, "container", "cronium.pool",
                                                       f"cronium.owner={self.runtime.owner}", name=POOL_PREFIX)]
        except Exception:
            pass  # engine unreachable: remove what we know of (retried below while it is down)
        for cid in dict.fromkeys(idle):
            self._remove(cid)


def deadline_label(runtime) -> str:
    cfg = runtime.config
    return str(int(time.time() + IDLE_ALLOWANCE + cfg["limits.max_timeout"] + cfg["sidecar.ready_timeout"] + 600))
