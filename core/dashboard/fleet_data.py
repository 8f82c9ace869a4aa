"""What the fleet page shows, read from the store: workers and other live processes, the queue,
dead letters, the scheduler leader, and the activity of the last hour.

The queue figures are `Queue.stats()` and the heartbeats `store.owners.heartbeats()` — the very
calls the Prometheus gauges make (`QUEUE_GAUGES`, `heartbeat_samples` in core/fleet/metrics.py),
so the page and `/metrics` agree. The activity of the last hour comes from the `P executions`
index (never a SCAN), at most `ACTIVITY_LIMIT` executions: bounded work however busy the fleet.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..fleet.metrics import QUEUE_GAUGES, heartbeat_samples
from ..fleet.queue import Queue

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store

#: The window of the activity charts, in seconds.
ACTIVITY_WINDOW = 3600
#: At most this many executions of the window are read for the charts (the newest ones).
ACTIVITY_LIMIT = 5000
#: Dead letters listed on the page (the count is the metric's, over all of them).
DEAD_LETTERS_SHOWN = 20
#: Phases in lifecycle order; others found in records follow, sorted.
PHASE_ORDER = ("prepare", "token", "network", "sidecar", "sidecar_ready", "job", "cleanup")


@dataclass(frozen=True)
class Process:
    """One live cronium process, from its heartbeat."""

    owner: str
    kind: str
    host: str
    heartbeat_at: float
    heartbeat_age: float
    started: float | None
    running: int | None
    concurrency: int | None
    warm_pool: dict[str, int]

    @property
    def warm_total(self) -> int:
        return sum(self.warm_pool.values())


@dataclass(frozen=True)
class Activity:
    """Executions of the last hour: created per minute (oldest minute first) and the mean
    seconds of each phase over those that recorded it."""

    window_start: float
    per_minute: list[int]
    phase_means: list[tuple[str, float, int]]  # phase, mean seconds, executions
    executions: int
    truncated: bool


@dataclass(frozen=True)
class FleetSnapshot:
    workers: list[Process]
    others: list[Process]  # schedulers, `cronium run`s, agents
    queue: list[tuple[str, str, int]]  # (metric name, field, value), in QUEUE_GAUGES order
    dead_letters: list[dict[str, str]]
    leader: str | None
    activity: Activity
    taken_at: float = field(default_factory=time.time)

    def figure(self, name: str) -> int:
        """A queue figure by its metric name (`cronium_queue_length`, …)."""
        return next(value for metric, _, value in self.queue if metric == name)


def processes(store: "Store", now: float) -> list[Process]:
    """Every live process, from the heartbeats the metric `cronium_heartbeat_timestamp_seconds` reports."""
    beats = store.owners.heartbeats()
    stamps = {labels[0]: t for labels, t in heartbeat_samples(beats)}
    return [_process(hb, stamps[hb["owner"]], now) for hb in beats]


def _process(hb: dict[str, Any], beat_at: float, now: float) -> Process:
    pool = hb.get("warm_pool") if isinstance(hb.get("warm_pool"), dict) else {}
    return Process(owner=hb["owner"], kind=str(hb.get("kind", "")), host=str(hb.get("host", "")),
                   heartbeat_at=beat_at, heartbeat_age=max(0.0, now - beat_at), started=_number(hb.get("started")),
                   running=_int(hb.get("running")), concurrency=_int(hb.get("concurrency")),
                   warm_pool={str(k): _int(v) or 0 for k, v in pool.items()})


def queue_figures(queue: Queue) -> list[tuple[str, str, int]]:
    """(metric name, field, value) for each queue gauge, from one `Queue.stats()`."""
    stats = queue.stats()
    return [(name, field_name, int(stats[field_name])) for name, _, field_name in QUEUE_GAUGES]


def activity(store: "Store", now: float, *, window: float = ACTIVITY_WINDOW,
             limit: int = ACTIVITY_LIMIT) -> Activity:
    """Per-minute counts and mean phase durations of the executions created in the last `window`."""
    start = now - window
    ids = store.records.window(since=start, count=limit)
    rows = store.records.summaries(ids, ["created_at", "timings"])
    minutes = max(1, int(window // 60))
    per_minute = [0] * minutes
    sums: dict[str, list[float]] = {}
    for row in rows:
        created = row.get("created_at")
        if created is not None and start <= created <= now:
            per_minute[min(minutes - 1, int((created - start) // 60))] += 1
        for phase, seconds in (row.get("timings") or {}).items():
            if isinstance(seconds, (int, float)):
                sums.setdefault(phase, []).append(float(seconds))
    order = {p: i for i, p in enumerate(PHASE_ORDER)}
    phases = sorted(sums, key=lambda p: (order.get(p, len(order)), p))
    means = [(p, sum(sums[p]) / len(sums[p]), len(sums[p])) for p in phases]
    return Activity(start, per_minute, means, len(rows), truncated=len(ids) >= limit)


def fleet_snapshot(store: "Store", config: "Config", now: float | None = None) -> FleetSnapshot:
    """Everything the fleet page shows, read now."""
    now = time.time() if now is None else now
    procs, queue = processes(store, now), Queue(store, config)
    return FleetSnapshot(
        workers=[p for p in procs if p.kind == "worker"], others=[p for p in procs if p.kind != "worker"],
        queue=queue_figures(queue), dead_letters=queue.dead_letters(DEAD_LETTERS_SHOWN),
        leader=store.schedules.lease_holder(), activity=activity(store, now), taken_at=now)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
