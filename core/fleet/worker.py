"""The worker: takes executions off the queue and runs them through the lifecycle.

One worker process = one consumer of the queue's consumer group, named by its owner id
(`<host>.<pid>-<pid namespace>.<random>`), holding the owner heartbeat of its `Runtime`. It runs up to
`concurrency` executions at once (threads; the containers do the work). Besides the read loop,
a maintenance thread claims entries of dead workers, promotes due retries, reaps what dead
owners left in Docker every `worker.reap_interval` seconds, and forgets dead consumers that hold
nothing, and applies retention (`retention.*`: one bounded page of finished executions every
`retention.interval` seconds, see core/retention.py); a `CancelWatcher` (cancel.py) turns `cronium cancel` requests for the executions running
here into `Cancellation.cancel()`. See docs/queue.md for the delivery semantics.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..deploy.definition import JobDefinition
from ..deploy.registry import DeploymentRegistry
from ..errors import (
    EngineUnavailable,
    NotFound,
    SecretUnavailable,
    StoreUnavailable,
    UsageError,
)
from ..lifecycle import Cancellation, Orchestrator
from ..model import JobSpec
from ..reaper import reap, remove_execution_resources
from ..record import ATTEMPT_FIELDS
from ..retention import RetentionPolicy, prune
from ..runtime import Runtime
from .cancel import CancelWatcher
from .metrics import CroniumMetrics
from .queue import RELEASED_CONSUMER, Queue

log = logging.getLogger("cronium.worker")

#: Seconds a worker stops taking work after its Docker engine did not answer.
ENGINE_PAUSE = 10.0


class Worker:
    """Consumes the queue until `stop()`; thread-safe."""

    def __init__(self, runtime: Runtime, *, concurrency: int | None = None, metrics: CroniumMetrics | None = None):
        cfg = runtime.config
        self.runtime = runtime
        self.concurrency = max(1, concurrency or cfg["worker.concurrency"])
        self.queue = Queue(runtime.store, cfg)
        self.registry = DeploymentRegistry(runtime.store)
        self.metrics = metrics or CroniumMetrics()
        self.orchestrator = Orchestrator(runtime)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="cronium-worker")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._in_flight: dict[str, str] = {}  # entry id -> execution id
        self._running: dict[str, Cancellation] = {}  # execution id -> its cancellation
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._paused_until = 0.0
        self._threads: list[threading.Thread] = []
        self._cancels = CancelWatcher(runtime.store, running=self._running_now)
        self._retention_offset = 0

    @property
    def owner(self) -> str:
        return self.runtime.owner

    # --- life of the worker --------------------------------------------------------------------
    def start(self) -> None:
        """Connect, start the heartbeat and the background reaper, join the consumer group."""
        self.runtime.docker  # the engine must answer before we take work
        self.runtime.start("worker")
        self.queue.ensure_group()
        self.heal_sidecar_path()
        self.metrics.slots.set(self.concurrency)
        thread = threading.Thread(target=self._maintain, name="cronium-maintenance", daemon=True)
        thread.start()
        self._threads.append(thread)
        self._cancels.start()
        log.info("worker %s started: concurrency %d, queue %s, group %s", self.owner, self.concurrency,
                 self.runtime.store.keys.queue, self.queue.group)

    def serve(self) -> None:
        """Read and dispatch entries until `stop()` is called."""
        while not self._stopping.is_set():
            free = self._free_slots()
            if free <= 0 or time.monotonic() < self._paused_until:
                with self._changed:
                    self._changed.wait(0.25)
                continue
            try:
                entries = self.queue.read(self.owner, free, block_ms=500)
            except StoreUnavailable as exc:
                log.warning("cannot read the queue: %s", exc.message)
                self._stopping.wait(1.0)
                continue
            for entry in entries:
                self._dispatch(*entry)

    def stop(self, grace: float | None = None) -> None:
        """Stop taking work; let running executions finish for `grace` seconds (default
        `worker.shutdown_grace`), then cancel them; clean up and leave the group when idle."""
        if self._stopped.is_set():
            return
        self._stopping.set()
        grace = self.runtime.config["worker.shutdown_grace"] if grace is None else grace
        if self._wait_idle(grace) is False:
            self.cancel_all("the worker is shutting down")
            self._wait_idle(self.runtime.config["limits.stop_grace"] + 60)
        self._pool.shutdown(wait=False)
        try:
            self.queue.leave(self.owner)
        except Exception:  # Redis down: a later worker forgets the consumer once its heartbeat expired
            pass
        self._cancels.stop()
        self._stopped.set()
        self.orchestrator.close()
        log.info("worker %s stopped", self.owner)

    def cancel_all(self, reason: str) -> None:
        with self._lock:
            running = list(self._running.values())
        for cancellation in running:
            cancellation.cancel(reason)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def _running_now(self) -> dict[str, Cancellation]:
        with self._lock:
            return dict(self._running)

    def _free_slots(self) -> int:
        with self._lock:
            return self.concurrency - len(self._in_flight)

    def _wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    # --- one entry -----------------------------------------------------------------------------
    def _dispatch(self, entry_id: str, fields: dict[str, str], deliveries: int) -> None:
        with self._lock:
            self._in_flight[entry_id] = fields.get("execution", "")
        self._pool.submit(self._handle, entry_id, fields, deliveries)

    def _handle(self, entry_id: str, fields: dict[str, str], deliveries: int) -> None:
        try:
            self._process(entry_id, fields, deliveries)
        except StoreUnavailable as exc:
            log.warning("entry %s: Redis did not answer (%s); it stays pending and is tried again", entry_id,
                        exc.message)
        except Exception:
            log.exception("entry %s: unexpected error; it stays pending and is tried again", entry_id)
        finally:
            with self._changed:
                self._in_flight.pop(entry_id, None)
                self._changed.notify_all()

    def _process(self, entry_id: str, fields: dict[str, str], deliveries: int) -> None:
        q = self.queue
        execution_id = fields.get("execution", "")
        if not execution_id.startswith("exec_"):
            q.dead_letter(entry_id, fields, "the entry names no execution", deliveries)
            return
        if deliveries > q.max_deliveries:
            reason = (f"delivered {deliveries} times (queue.max_deliveries = {q.max_deliveries}): the workers "
                      "that took it died or could not start it")
            q.dead_letter(entry_id, fields, reason, deliveries)
            self.metrics.dead_lettered.inc()
            log.error("%s dead-lettered: %s", execution_id, reason)
            return
        claim = q.claim(execution_id, self.owner, deliveries)
        if claim.action == "missing":
            q.dead_letter(entry_id, fields, "the execution record does not exist (or has an unknown status)",
                          deliveries)
            self.metrics.dead_lettered.inc()
            return
        if claim.action == "busy":  # its owner is alive and runs it: that owner acknowledges it
            q.hand_over(entry_id, claim.previous_owner)
            return
        if claim.action == "done":  # finished before (the ack was lost): never run twice
            self._finish(entry_id, execution_id)
            return
        if claim.rerun:
            self._prepare_rerun(execution_id, claim.previous_owner)
        reason = q.cancel_requested(execution_id)
        if reason:
            self.runtime.store.records.update(execution_id, {"status": "cancelled", "error": reason,
                                                               "finished_at": time.time()})
            self._finish(entry_id, execution_id)
            return
        try:
            spec = self._spec(claim.record, execution_id)
        except (SecretUnavailable, NotFound, UsageError) as exc:
            q.fail(execution_id, exc.message)
            log.error("%s could not start: %s", execution_id, exc.message)
            self._finish(entry_id, execution_id)
            return
        self._run(entry_id, execution_id, spec)

    def _run(self, entry_id: str, execution_id: str, spec: JobSpec) -> None:
        cancellation = Cancellation()
        with self._lock:
            self._running[execution_id] = cancellation
        self.metrics.running.set(len(self._running))
        log.info("%s started: job %s (attempt %d)", execution_id, spec.job_id, spec.attempt)
        try:
            result = self.orchestrator.run(spec, cancel=cancellation)
        except UsageError as exc:  # this worker's config refuses the spec (e.g. an unknown profile)
            self.queue.fail(execution_id, exc.message)
            log.error("%s refused: %s", execution_id, exc.message)
            self._finish(entry_id, execution_id)
            return
        except EngineUnavailable as exc:
            # Nothing was created: give the execution back for any worker, and pause taking work.
            self.queue.requeue(execution_id)
            self.queue.hand_over(entry_id, RELEASED_CONSUMER)
            self._paused_until = time.monotonic() + ENGINE_PAUSE
            log.error("%s given back: %s", execution_id, exc.message)
            return
        finally:
            with self._lock:
                self._running.pop(execution_id, None)
            self.metrics.running.set(len(self._running))
        self.metrics.observe_result(result)
        log.info("%s %s: job %s in %.2fs%s", execution_id, result.status, result.job_id, result.duration,
                 f" ({result.error})" if result.error else "")
        self._finish(entry_id, execution_id)

    def _finish(self, entry_id: str, execution_id: str) -> None:
        """Follow-ups first, acknowledgement last: a crash in between re-delivers the entry, and
        the follow-ups are idempotent."""
        for enqueued in self.queue.follow_up(execution_id, self.registry):
            if enqueued.created:
                log.info("%s enqueued after %s", enqueued.execution_id, execution_id)
        self.queue.ack(entry_id)

    def _prepare_rerun(self, execution_id: str, previous_owner: str) -> None:
        """The previous owner died: remove what it left of this execution (on this host's engine),
        and the traces of its attempt in the record and the log stream."""
        log.warning("%s runs again: its previous owner %s is gone", execution_id, previous_owner or "?")
        self.metrics.claimed.inc()
        report = remove_execution_resources(self.runtime, execution_id)
        if report.removed:
            log.info("%s: removed %s", execution_id, ", ".join(report.removed))
        for error in report.errors:
            log.warning("%s: %s", execution_id, error)
        store = self.runtime.store
        store.records.drop_fields(execution_id, ATTEMPT_FIELDS)
        store.logs.delete(execution_id)

    def _spec(self, record: dict, execution_id: str) -> JobSpec:
        if not record.get("definition"):
            raise NotFound(f"execution {execution_id} has no job definition (was it enqueued by this version?)")
        definition = JobDefinition.from_json(json.dumps(record["definition"]))
        script = self.registry.script(definition.script_digest) if definition.script_digest else None
        return definition.job_spec(script, execution_id=execution_id, input=record.get("input"),
                                   attempt=int(record.get("attempt") or 1), metadata=record.get("metadata") or {},
                                   allow=self.runtime.config["worker.secret_env_allow"])

    # --- background duties ---------------------------------------------------------------------
    def _maintain(self) -> None:
        cfg = self.runtime.config
        next_claim = next_promote = next_forget = next_retention = 0.0
        next_path = time.monotonic() + cfg["services.path_check_interval"]  # start() healed it once
        next_reap = time.monotonic() + cfg["worker.reap_interval"]  # Runtime.start reaped once already
        while not self._stopped.wait(0.25):
            now = time.monotonic()
            try:
                self._check_heartbeat()
                if self._stopping.is_set():
                    continue
                if now >= next_promote:
                    next_promote = now + 1.0
                    self.queue.promote_delayed()
                if now >= next_claim and now >= self._paused_until:
                    next_claim = now + cfg["queue.claim_interval"]
                    self.runtime.flush_spool()
                    with self._lock:
                        in_flight = set(self._in_flight)
                    for entry in self.queue.claim_abandoned(self.owner, limit=self._free_slots(),
                                                            in_flight=in_flight,
                                                            min_idle=cfg["queue.claim_min_idle"]):
                        log.info("claimed entry %s (%s, delivery %d) from a dead worker", entry[0],
                                 entry[1].get("execution"), entry[2])
                        self._dispatch(*entry)
                if now >= next_reap:
                    next_reap = now + cfg["worker.reap_interval"]
                    report = reap(self.runtime)
                    if report.removed or report.lost:
                        log.info("reaper: removed %d resource(s), %d execution(s) lost", len(report.removed),
                                 len(report.lost))
                if now >= next_forget:
                    next_forget = now + 60.0
                    self.queue.forget_dead_consumers(min_idle=cfg["heartbeat.ttl"])
                if now >= next_retention:
                    next_retention = now + cfg["retention.interval"]
                    self.apply_retention()
                if cfg["services.path_check_interval"] and now >= next_path:
                    next_path = now + cfg["services.path_check_interval"]
                    self.heal_sidecar_path()
            except StoreUnavailable as exc:
                log.warning("maintenance: %s", exc.message)
            except Exception:
                log.exception("maintenance step failed")

    def heal_sidecar_path(self) -> None:
        """Probe the sidecars' path to the managed Redis (a new container on the services network,
        by name) and heal it when the engine lost the name; a path that stays broken is logged,
        never fatal (jobs still run; their helper calls fail until it is fixed)."""
        from ..host.services import ServiceError, ensure_sidecar_path

        try:
            ensure_sidecar_path(self.runtime.docker, self.runtime.config,
                                progress=lambda _name, message: log.warning("%s", message))
        except ServiceError as exc:
            log.error("%s (fix: %s)", exc.message, exc.hint)

    def apply_retention(self) -> list[str]:
        """One bounded pass of the configured retention (`retention.batch` executions at most);
        the next pass goes on where this one stopped. Returns the executions removed."""
        policy = RetentionPolicy.from_config(self.runtime.config)
        report = prune(self.runtime, policy, max_pages=1, offset=self._retention_offset)
        self._retention_offset = report.next_offset
        if report.removed:
            log.info("retention: removed %d finished execution(s), %d log file(s)", len(report.removed),
                     len(report.files))
        for error in report.errors:
            log.warning("retention: %s", error)
        return report.removed

    def _check_heartbeat(self) -> None:
        """Self-fencing: when this worker could not renew its heartbeat for longer than its TTL,
        other workers may take its executions over, so it stops them itself."""
        heartbeat = self.runtime.heartbeat
        if heartbeat is None:
            return
        heartbeat.info.update({"running": len(self._running), "concurrency": self.concurrency,
                               "warm_pool": self.runtime.warm_pool_idle()})
        if heartbeat.last_beat and time.time() - heartbeat.last_beat > heartbeat.ttl:
            with self._lock:
                still_running = [c for c in self._running.values() if not c.is_set]
            if still_running:
                log.error("no heartbeat for more than %.0fs: cancelling %d running execution(s)", heartbeat.ttl,
                          len(still_running))
                for cancellation in still_running:
                    cancellation.cancel("the worker lost contact with Redis for longer than heartbeat.ttl")
