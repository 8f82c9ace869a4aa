"""The scheduler: enqueues the runs of scheduled jobs, one leader among any number of schedulers.

Leadership is a Redis lease (kept by `store.schedules`): `SET P scheduler:leader <owner> NX PX
<ttl>`; the leader renews it every ttl/3 with a compare-and-renew Lua script, and acts only while
its lease is valid by its own clock. When the leader stops renewing, the key expires and another
scheduler acquires it.

Each scheduled job keeps a cursor in `P schedule:<job>` (the last fire time handled). On every
tick the leader enqueues the fire times between the cursor and now. The execution id of a
scheduled run is derived from (job, fire time), and enqueueing is idempotent by execution id, so
each fire time is enqueued exactly once — even when two schedulers briefly both believe they
lead, or a new leader repeats fire times the old one had enqueued but not yet recorded. Fire
times later than `scheduler.starting_deadline` (the scheduler was down) are skipped and counted.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from ..deploy.cron import Schedule, ScheduleError, parse_schedule
from ..deploy.definition import JobDefinition
from ..deploy.registry import DeploymentRegistry
from ..errors import StoreUnavailable
from ..runtime import Runtime
from .metrics import CroniumMetrics
from .queue import Queue, derived_execution_id

log = logging.getLogger("cronium.scheduler")

#: Longest sleep between ticks (deploys and lease changes are noticed within this).
MAX_TICK = 1.0
#: At most this many missed fire times are counted one by one after an outage.
MAX_COUNTED_MISSES = 1000


class LeaderLease:
    """The schedulers' leader lease (`store.schedules`), held by one owner at a time."""

    def __init__(self, store, owner: str, ttl: float):
        self.schedules = store.schedules
        self.key = store.keys.scheduler_lease
        self.owner = owner
        self.ttl = ttl
        self._valid_until = 0.0  # monotonic

    @property
    def held(self) -> bool:
        """True while our lease is valid by our own clock (with a safety margin)."""
        return time.monotonic() < self._valid_until

    def refresh(self) -> bool:
        """Renew our lease, or acquire a free one. Returns whether we lead now."""
        started = time.monotonic()
        # Renewed if the key is still ours (even when our own clock already gave it up), else
        # taken if it is free.
        ok = self.schedules.take_lease(self.owner, int(self.ttl * 1000))
        if not ok:  # another scheduler leads
            self._valid_until = 0.0
        if ok:
            # Count from before the request was sent, minus a margin for clock drift.
            self._valid_until = started + self.ttl * 0.8
        return ok

    def holder(self) -> str | None:
        return self.schedules.lease_holder()

    def release(self) -> None:
        self._valid_until = 0.0
        self.schedules.release_lease(self.owner)


@dataclass
class _Scheduled:
    job: JobDefinition
    schedule: Schedule
    deployed_at: float


class Scheduler:
    """Runs `tick()` until `stop()`; only the lease holder enqueues."""

    def __init__(self, runtime: Runtime, *, metrics: CroniumMetrics | None = None):
        cfg = runtime.config
        self.runtime = runtime
        self.store = runtime.store
        self.queue = Queue(runtime.store, cfg)
        self.registry = DeploymentRegistry(runtime.store)
        self.metrics = metrics or CroniumMetrics()
        self.lease = LeaderLease(runtime.store, runtime.owner, cfg["scheduler.lease_ttl"])
        self.starting_deadline = cfg["scheduler.starting_deadline"]
        self._jobs: dict[str, _Scheduled] = {}
        self._generation: int | None = None
        self._next_refresh = 0.0
        self._stop = threading.Event()
        self._leading = False

    def start(self) -> None:
        self.runtime.start("scheduler")
        log.info("scheduler %s started (lease %s, ttl %.1fs)", self.runtime.owner, self.lease.key, self.lease.ttl)

    def serve(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.tick()
            except StoreUnavailable as exc:
                log.warning("scheduler: %s", exc.message)
                wait = MAX_TICK
            self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        try:
            if self._leading:
                self.lease.release()
                log.info("scheduler %s released the leader lease", self.runtime.owner)
        except StoreUnavailable:
            pass  # the lease expires by itself

    # --- one tick ------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> float:
        """Renew or take the lease; as leader, enqueue due fire times. Returns seconds to sleep."""
        mono = time.monotonic()
        if mono >= self._next_refresh or not self.lease.held:
            leading = self.lease.refresh()
            self._next_refresh = mono + self.lease.ttl / 3
            if leading != self._leading:
                log.info("scheduler %s %s", self.runtime.owner, "is the leader now" if leading else "is on standby")
                self._leading = leading
            self.metrics.leader.set(1 if leading else 0)
        if not self.lease.held:
            return min(MAX_TICK, max(0.05, self._next_refresh - time.monotonic()))
        self._reload()
        self.queue.promote_delayed()
        now = time.time() if now is None else now
        soonest = now + MAX_TICK
        for entry in list(self._jobs.values()):
            if not self.lease.held:
                break
            try:
                upcoming = self._fire_due(entry, now)
            except ScheduleError as exc:
                log.error("job %s: %s", entry.job.name, exc)
                continue
            soonest = min(soonest, upcoming)
        return min(MAX_TICK, max(0.02, soonest - time.time()), max(0.05, self._next_refresh - time.monotonic()))

    def _reload(self) -> None:
        generation = self.registry.generation()
        if generation == self._generation:
            return
        jobs: dict[str, _Scheduled] = {}
        for job in self.registry.jobs():
            if not job.schedule or job.suspend:
                continue
            try:
                schedule = parse_schedule(job.schedule, job.timezone)
            except ScheduleError as exc:
                log.error("job %s: %s", job.name, exc)
                continue
            deployed_at = self.store.deployments.deployed_at(job.name)
            jobs[job.name] = _Scheduled(job, schedule, time.time() if deployed_at is None else deployed_at)
        self._jobs = jobs
        self._generation = generation
        log.info("scheduler: %d scheduled job(s): %s", len(jobs), ", ".join(sorted(jobs)) or "-")

    def _fire_due(self, entry: _Scheduled, now: float) -> float:
        """Enqueue every fire time of one job in (cursor, now]; returns its next fire time."""
        job, schedule = entry.job, entry.schedule
        schedules = self.store.schedules
        state = schedules.state(job.name)
        if state.get("schedule") != job.schedule or state.get("timezone") != job.timezone or "cursor" not in state:
            cursor = entry.deployed_at  # new or changed schedule: from the deployment on
            schedules.update(job.name, {"schedule": job.schedule, "timezone": job.timezone, "cursor": repr(cursor)})
        else:
            cursor = float(state["cursor"])
        at = lambda ts: datetime.fromtimestamp(ts, timezone.utc)  # noqa: E731
        oldest_allowed = now - self.starting_deadline
        if cursor < oldest_allowed:
            missed = 0
            for _ in schedule.fire_times(at(cursor), at(oldest_allowed)):
                missed += 1
                if missed >= MAX_COUNTED_MISSES:
                    break
            if missed:
                log.warning("job %s: %d fire time(s) missed by more than scheduler.starting_deadline (%.0fs)",
                            job.name, missed, self.starting_deadline)
                self.metrics.skipped.inc(job.name, "missed", amount=missed)
                schedules.count(job.name, "missed", missed)
            cursor = oldest_allowed
        fire = schedule.next_after(at(cursor))
        while fire.timestamp() <= now and self.lease.held:
            self._enqueue(job, fire.timestamp())
            fire = schedule.next_after(fire)
        schedules.update(job.name, {"next_fire": repr(fire.timestamp())})
        return fire.timestamp()

    def _enqueue(self, job: JobDefinition, fire_ts: float) -> None:
        execution_id = derived_execution_id("schedule", job.name, f"{fire_ts:.3f}")
        result = self.queue.enqueue(job, input=job.input, trigger="schedule", execution_id=execution_id,
                                    scheduled_for=fire_ts)
        fields = {"cursor": repr(fire_ts), "last_fire": repr(fire_ts)}
        if result.created:
            self.metrics.enqueued.inc(job.name)
            fields["last_execution"] = execution_id
            log.info("job %s: enqueued %s for %s%s", job.name, execution_id,
                     datetime.fromtimestamp(fire_ts, timezone.utc).isoformat(),
                     f" (replacing {', '.join(result.replaced)})" if result.replaced else "")
        elif result.reason == "busy":
            self.metrics.skipped.inc(job.name, "busy")
            fields["last_skip"] = repr(fire_ts)
            self.store.schedules.count(job.name, "skipped")
            log.info("job %s: run for %s skipped: the previous run is still active (concurrency forbid)",
                     job.name, datetime.fromtimestamp(fire_ts, timezone.utc).isoformat())
        self.store.schedules.update(job.name, fields)
