"""A per-process pool of started sidecars that wait for their settings (not a plugin itself).

Booting a sidecar (container start + importing Sanic) takes most of a second. A long-lived
orchestrating process (a worker, the local agent, an embedding application) keeps sidecars started
ahead of time on the services network, with everything imported, blocked reading their settings
from stdin. They hold no secret: nothing of an execution reaches them before a claim.

A job claims one (`take`): the sidecar plugin records the claim in the store (pooled object id ->
execution, owner, attempt) *before* the sidecar gets anything of the execution, renames it to
`cronium-runtime-<execution>`, connects it to the job network with the alias `runtime-api` and
sends the settings — ready in about 0.1 s. A claimed sidecar is never returned: it is removed with
its job, and the claim record after it. Replacements start at the job's release when no idle one
of its kind is left or other jobs of the pool are running (`refill_if_short`), else — one job at
a time — once the job is over and cleaned up (`refill_now`): a boot takes CPU the job's own run
and result would otherwise wait for.

Size. The pool keeps, per kind of sidecar (`pool_key`), as many idle ones as jobs asked for one in
the last `pool.demand_window` seconds (hits and misses), at least `sidecar.pool_size`, and never
more than `pool.max_idle` idle or starting in all: when that is reached, a kind short of its target
takes the place of idle ones of kinds that hold more than one (least recently asked first), so a
new kind (another profile or image of a slot) is not shut out for `idle_timeout` by older ones.
With no request for `pool.idle_timeout` seconds a kind is drained (its idle sidecars removed)
until the next request; an idle sidecar older than
`MAX_IDLE_AGE` is replaced (its deadline label must stay ahead of any job that may claim it).

Pooled sidecars are this process's resources like any other: labelled `cronium.managed` with this
process as `cronium.owner`, this installation's `cronium.installation` and a pool name as
`cronium.execution` (so the sidecar plugin's `reap_orphans` removes them if the process dies),
removed when the runtime closes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections import deque
from typing import Callable

from cronium.plugins import _docker

#: Names of idle pooled sidecars (a claimed one is renamed `cronium-runtime-<execution>`).
POOL_PREFIX = "cronium-pool-"
#: Slack added to a pooled sidecar's deadline label (it may wait idle, then serve a long job).
IDLE_ALLOWANCE = 3600
#: An idle sidecar older than this is replaced, so that its deadline label stays ahead of a job's.
MAX_IDLE_AGE = IDLE_ALLOWANCE / 2


def pool_key(image: str, user: str | None, host_config: dict) -> str:
    """Sidecars are interchangeable only if they were created with the same image and options."""
    text = json.dumps({"image": image, "user": user, "host": host_config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SidecarPool:
    """Also the pool of slots (`_slots`): a pooled object is then a whole slot, named with another
    `prefix`, removed with its own `remove(object or name)` and, at close, found by `leftovers()`
    (the objects of this process a failed creation may have left; default: pooled sidecars)."""

    def __init__(self, runtime, *, min_idle: int, max_idle: int, demand_window: float, idle_timeout: float,
                 prefix: str = POOL_PREFIX, remove: Callable[[object], None] | None = None,
                 leftovers: Callable[[], list] | None = None):
        self.runtime = runtime
        self.prefix = prefix
        self._remove_object, self._leftovers = remove, leftovers
        self.min_idle, self.max_idle = min_idle, max_idle
        self.demand_window, self.idle_timeout = demand_window, idle_timeout
        self._idle: dict[str, list[tuple[str, float]]] = {}  # key -> (container id, started at), oldest first
        self._filling: dict[str, int] = {}
        self._requests: dict[str, deque[float]] = {}  # key -> times jobs asked for a sidecar
        self._deferred: dict[str, tuple[str, Callable[[str], str], float]] = {}
        self._open: set[str] = set()  # executions that asked (refill_later) and have not ended (refill_now)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None
        #: Claims served warm / asked for in vain, sidecars started, removed unused (drained or closed).
        self.counts = {"hits": 0, "misses": 0, "started": 0, "drained": 0}

    @classmethod
    def from_config(cls, runtime) -> "SidecarPool":
        cfg = runtime.config
        return cls(runtime, min_idle=cfg["sidecar.pool_size"], max_idle=cfg["pool.max_idle"],
                   demand_window=cfg["pool.demand_window"], idle_timeout=cfg["pool.idle_timeout"])

    def refill_later(self, execution_id: str, key: str, create: Callable[[str], str]) -> None:
        """Remember to top up `key` when `refill_now(execution_id)` is called (sized by the demand
        as it was now, when the job asked)."""
        with self._lock:
            self._deferred[execution_id] = (key, create, time.monotonic())
            self._open.add(execution_id)

    def refill_now(self, execution_id: str) -> None:
        """Top up for this job now (if not done yet); called at its end, it no longer counts as running."""
        with self._lock:
            deferred = self._deferred.pop(execution_id, None)
            self._open.discard(execution_id)
        if deferred is not None:
            self.refill(*deferred)

    def refill_if_short(self, execution_id: str) -> None:
        """At a job's release: top up now when no idle one of its kind is left or other jobs that
        asked this pool are running (a busy process: as before); else — one job at a time, an
        idle one left for the next — leave it to `refill_now` at the job's end, so that the
        replacements' CPU-bound boot does not compete with this job's run and result."""
        with self._lock:
            deferred = self._deferred.get(execution_id)
            if deferred is None or (self._idle.get(deferred[0]) and len(self._open) <= 1):
                return
            del self._deferred[execution_id]
        self.refill(*deferred)

    def take(self, key: str) -> str | None:
        """An idle sidecar of `key` for a job (it leaves the pool for good), or None. Every call
        counts as demand for `key`."""
        with self._lock:
            self._requests.setdefault(key, deque()).append(time.monotonic())
            idle = self._idle.get(key)
            self.counts["hits" if idle else "misses"] += 1
            return idle.pop(0)[0] if idle else None

    def target(self, key: str, now: float | None = None) -> int:
        """How many idle sidecars of `key` the pool keeps now (see the module docstring)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            requests = self._requests.get(key) or deque()
            while requests and requests[0] < now - max(self.demand_window, self.idle_timeout):
                requests.popleft()
            if not requests or requests[-1] < now - self.idle_timeout:
                return 0
            recent = sum(1 for t in requests if t >= now - self.demand_window)
        return max(0, min(self.max_idle, max(self.min_idle, recent)))

    def idle_count(self, key: str | None = None) -> int:
        with self._lock:
            return sum(len(ids) for k, ids in self._idle.items() if key is None or k == key)

    def refill(self, key: str, create: Callable[[str], str], asked_at: float | None = None) -> None:
        """Start replacements in the background until `target(key)` sidecars of this key are idle
        or starting (never past `max_idle` in all). `create(name)` creates and starts one and
        returns its container id. `asked_at`: judge the demand as of then (default: now)."""
        target = self.target(key, asked_at)
        with self._lock:
            total = sum(len(ids) for ids in self._idle.values()) + sum(self._filling.values())
            short = target - len(self._idle.get(key, [])) - self._filling.get(key, 0)
            evicted = self._make_room(key, short - (self.max_idle - total)) if not self._closed else []
            missing = min(short, self.max_idle - total + len(evicted))
            if evicted:  # removed in the background; close() joins it like the fills
                evict = threading.Thread(target=lambda: [self._remove(cid) for cid in evicted],
                                         name="cronium-pool-evict", daemon=True)
                evict.start()
                self._threads.append(evict)
            if self._closed or missing <= 0:
                return
            self._filling[key] = self._filling.get(key, 0) + missing
            self._threads = [t for t in self._threads if t.is_alive()]
            for _ in range(missing):  # started under the lock: close() never joins an unstarted one
                t = threading.Thread(target=self._fill_one, args=(key, create), name="cronium-pool", daemon=True)
                t.start()
                self._threads.append(t)
            if self._drainer is None:
                self._drainer = threading.Thread(target=self._drain_loop, name="cronium-pool-drain", daemon=True)
                self._drainer.start()

    def _make_room(self, key: str, needed: int) -> list[str]:
        """Fair share when the pool is full (called under the lock): a kind short of its target may
        take the place of idle objects of other kinds that hold more than one idle, the kind asked
        least recently first (one each round). Returns the ids taken out of the pool."""
        taken: list[str] = []
        while len(taken) < needed:
            others = [k for k, idle in self._idle.items() if k != key and len(idle) > 1]
            if not others:
                break
            oldest = min(others, key=lambda k: (self._requests.get(k) or [0.0])[-1])
            taken.append(self._idle[oldest].pop(0)[0])
        self.counts["drained"] += len(taken)
        return taken

    def _fill_one(self, key: str, create: Callable[[str], str]) -> None:
        container_id = None
        name = f"{self.prefix}{secrets.token_hex(6)}"
        try:
            container_id = create(name)
        except Exception:
            # A failed warm start only means the next job boots its sidecar cold — but the
            # container may exist (created, then the start failed or the engine went away).
            logging.getLogger("cronium.pool").debug("pooled %s failed to start", name, exc_info=True)
            self._remove(name)
        finally:
            with self._lock:
                self._filling[key] -= 1
                if container_id and not self._closed:
                    self.counts["started"] += 1
                    self._idle.setdefault(key, []).append((container_id, time.monotonic()))
                    container_id = None
        if container_id:  # closed while we were creating it
            self._remove(container_id)

    def drain(self, now: float | None = None) -> list[str]:
        """Remove idle sidecars the pool no longer wants: those of a kind above its target (no
        request for `idle_timeout`: target 0) and those older than `MAX_IDLE_AGE`. Returns their ids."""
        now = time.monotonic() if now is None else now
        targets = {key: self.target(key, now) for key in list(self._idle)}
        dropped = []
        with self._lock:
            for key, idle in self._idle.items():
                keep = [(cid, born) for cid, born in idle if now - born < MAX_IDLE_AGE]
                dropped += [cid for cid, born in idle if now - born >= MAX_IDLE_AGE]
                excess = max(0, len(keep) - targets.get(key, 0))
                dropped += [cid for cid, _ in keep[:excess]]  # the oldest go first
                self._idle[key] = keep[excess:]
        with self._lock:
            self.counts["drained"] += len(dropped)
        for cid in dropped:
            self._remove(cid)
        return dropped

    def _drain_loop(self) -> None:
        interval = max(0.5, min(30.0, self.idle_timeout / 4))
        while not self._stop.wait(interval):
            try:
                self.drain()
            except Exception:
                pass  # the next round retries; close() and the reaper remove what is left

    def _remove(self, ident) -> None:
        try:
            if self._remove_object is not None:
                self._remove_object(ident)
            else:
                _docker.remove(self.runtime.docker, "container", ident, wait=30)
        except Exception:
            pass  # the reaper removes it once this process is gone (our owner label)

    def close(self) -> None:
        """Remove every idle sidecar of this pool. Also looks them up by label, so that one whose
        creation failed halfway (its id never reached us) is not left behind either."""
        with self._lock:
            self._closed = True
            idle = [cid for ids in self._idle.values() for cid, _ in ids]
            self._idle.clear()
            threads, self._threads = self._threads, []
        self._stop.set()
        for t in threads:
            t.join(30)
        try:
            if self._leftovers is not None:
                idle += self._leftovers()
            else:
                # Claimed ones were renamed (cronium-runtime-<exec>) and go with their job: not these.
                idle += [c["Id"] for c in _docker.labelled(self.runtime.docker, "container", "cronium.pool",
                                                           f"cronium.owner={self.runtime.owner}", name=POOL_PREFIX)]
        except Exception:
            pass  # engine unreachable: remove what we know of (retried below while it is down)
        for cid in dict.fromkeys(idle):
            self._remove(cid)


def deadline_label(runtime) -> str:
    cfg = runtime.config
    return str(int(time.time() + IDLE_ALLOWANCE + cfg["limits.max_timeout"] + cfg["sidecar.ready_timeout"] + 600))
