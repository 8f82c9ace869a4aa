"""The job queue: a Redis Stream consumed by a consumer group of workers.

Delivery semantics (the full story is in docs/queue.md):

- An execution is enqueued atomically with its record: one Lua script creates `P exec:<id>` with
  status `queued`, adds it to the job's active set and `XADD`s `{execution, job}` to `P queue` —
  or does nothing when a record with that execution id exists. Execution ids derived from what
  caused the run (a schedule's fire time, a parent execution) make every enqueue idempotent.
- Workers read with `XREADGROUP` (consumer name = the worker's owner id) and `XACK` + `XDEL` an
  entry only after the execution's final record is written and its follow-ups (retries, workflow
  successors) are enqueued. The stream therefore holds exactly the unfinished entries.
- Before running, a worker *claims* the execution record (optimistic transaction): a record that
  is final is only acknowledged (never run twice); one run by a live owner is handed back to
  that owner; one whose owner is dead (heartbeat key expired) or that is `lost` runs again as a
  new delivery of the same execution id.
- Entries held by a consumer whose heartbeat expired are claimed (`XPENDING` + `XCLAIM`) by
  another worker; after `queue.max_deliveries` deliveries an entry goes to the dead-letter stream
  `P queue:dead` with the reason, and its record ends as `error`.
"""
from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ..deploy.definition import JobDefinition
from ..deploy.registry import DeploymentRegistry
from ..errors import CroniumError, NotFound
from ..model import ACTIVE_STATUSES, FINAL_STATUSES, LIVE_STATUSES, Status
from ..record import iso, new_record

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store

#: A pseudo-consumer that never has a heartbeat: entries handed to it are free for any worker.
RELEASED_CONSUMER = "cronium-released"
#: Seconds a cancel request (`P cancel:<id>`) is kept for the owner of a running execution.
CANCEL_REQUEST_TTL = 7 * 24 * 3600


def derived_execution_id(*parts: str) -> str:
    """A deterministic execution id for a run caused by something with an identity (a fire time,
    a parent execution): enqueueing the same cause twice finds the existing record."""
    return "exec_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dataclass
class Enqueued:
    """What `Queue.enqueue` did: `created` False with `reason` "exists" (idempotent re-enqueue) or
    "busy" (the job's concurrency policy is forbid and a run is active)."""

    execution_id: str
    created: bool
    reason: str = ""
    replaced: list[str] = field(default_factory=list)
    delayed_until: float | None = None


@dataclass
class Claim:
    """The decision a worker takes for a delivered entry (see `Queue.claim`)."""

    action: str  # run | done | busy | missing
    record: dict[str, Any] = field(default_factory=dict)
    rerun: bool = False
    previous_owner: str = ""


class Queue:
    """Enqueue, claim, acknowledge, cancel and inspect executions (the Redis side: `store.queue`)."""

    def __init__(self, store: "Store", config: "Config"):
        self.store = store
        self.config = config
        self.stored = store.queue
        self.group = config["queue.group"]
        self.max_deliveries = config["queue.max_deliveries"]

    # --- producing ---------------------------------------------------------------------------
    def enqueue(self, job: JobDefinition, *, input: Any = None, trigger: str = "manual",
                execution_id: str | None = None, attempt: int = 1, retry_of: str | None = None,
                not_before: float | None = None, scheduled_for: float | None = None,
                metadata: Mapping[str, Any] | None = None) -> Enqueued:
        """Create the `queued` record and the stream entry (or a delayed entry) atomically,
        applying the job's concurrency policy. Idempotent by execution id."""
        from ..model import new_execution_id

        execution_id = execution_id or new_execution_id()
        now = time.time()
        replaced: list[str] = []
        policy = job.concurrency
        if policy != "allow":
            active = self.active_executions(job.name)
            if policy == "replace" and active:
                for other in active:
                    if other != execution_id:
                        self.cancel(other, f"replaced by {execution_id} (concurrency policy replace)")
                        replaced.append(other)
                policy = "allow"
        meta = {"trigger": trigger, "deployment": job.deployment, **(metadata or {})}
        if scheduled_for is not None:
            meta["scheduled_for"] = iso(scheduled_for)
        if retry_of:
            meta["retry_of"] = retry_of
        namespace = job.namespace or self.config["namespace"]
        # The spec as the record describes it: secret names only (the values are resolved on the worker).
        spec = job.job_spec(None, execution_id=execution_id, input=input, attempt=attempt,
                            environ={ref.split(":", 1)[1]: "" for ref in job.secret_env.values()})
        record = new_record(
            execution_id=execution_id, job_id=job.name, job_name=job.name, job_type=job.job_type,
            namespace=namespace, status=Status.QUEUED, created_at=now, spec=spec.describe(), attempt=attempt,
            input=input, metadata=meta, started=False, owner="", host="", queued_at=now, trigger=trigger,
            deliveries=0, deployment=job.deployment, definition=json.loads(job.to_json()))
        record["metadata"] = meta
        if retry_of:
            record["retry_of"] = retry_of
        if scheduled_for is not None:
            record["scheduled_for"] = scheduled_for
        if not_before is not None and not_before > now:
            record["not_before"] = not_before
        created, detail = self.stored.enqueue(execution_id, job.name, record, policy=policy, now=now,
                                              not_before=not_before)
        if not created:
            return Enqueued(execution_id, False, reason=detail, replaced=replaced)
        return Enqueued(execution_id, True, replaced=replaced,
                        delayed_until=not_before if detail == "delayed" else None)

    def submit(self, job_name: str, *, submitted_by: str, input: Any = None, use_job_input: bool = True) -> Enqueued:
        """One manual run of the deployed job `job_name` (`cronium submit`, the dashboard's "run
        now"): the job's own input unless `use_job_input` is False; `submitted_by` goes in the
        record's metadata. Refused (`CroniumError`) while a run is active and the job's concurrency
        policy is forbid; `NotFound` for a job that is not deployed."""
        definition = DeploymentRegistry(self.store).job(job_name)
        result = self.enqueue(definition, input=definition.input if use_job_input else input, trigger="manual",
                              metadata={"submitted_by": submitted_by})
        if not result.created:
            raise CroniumError(f"job '{job_name}' was not enqueued: it has an active execution and its concurrency "
                               "policy is forbid", hint="wait for it, or cancel it with `cronium cancel EXECUTION` "
                                                        f"(see `cronium jobs list --job {job_name}`)")
        return result

    def active_executions(self, job: str) -> list[str]:
        """The job's executions still active; members whose record ended (or vanished) are pruned."""
        return self.stored.active(job, ACTIVE_STATUSES)

    def promote_delayed(self) -> int:
        """Move delayed executions whose time has come into the stream (safe from any process)."""
        return self.stored.promote_delayed(time.time())

    # --- consuming ---------------------------------------------------------------------------
    def ensure_group(self) -> None:
        self.stored.ensure_group(self.group)

    def read(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, dict[str, str], int]]:
        """New entries for this consumer: (entry id, fields, deliveries)."""
        return [(entry_id, fields, 1) for entry_id, fields in self.stored.read(self.group, consumer, count, block_ms)]

    def claim_abandoned(self, consumer: str, *, limit: int, in_flight: set[str],
                        min_idle: float) -> list[tuple[str, dict[str, str], int]]:
        """Entries held by consumers whose heartbeat expired (or released, or our own entries we
        no longer work on), claimed for `consumer`: (entry id, fields, deliveries).

        `XAUTOCLAIM` cannot filter by consumer, so it would take the entries of live workers running
        long jobs (and bump their delivery counters); we list the pending entries with `XPENDING`,
        check each consumer's heartbeat key and `XCLAIM` only the abandoned ones. `XCLAIM` with a
        min-idle-time makes concurrent claimers safe: the first resets the idle time, the others
        get nothing."""
        if limit <= 0:
            return []
        min_idle_ms = int(min_idle * 1000)
        alive: dict[str, bool] = {}
        claimed = []
        for item in self.stored.pending(self.group, min_idle_ms=min_idle_ms):
            entry_id, holder = item["entry"], item["consumer"]
            if holder == consumer:
                if entry_id in in_flight:
                    continue
            elif holder != RELEASED_CONSUMER:
                if holder not in alive:
                    alive[holder] = self.store.owners.alive(holder)
                if alive[holder]:
                    continue
            for eid, fields in self.stored.take(self.group, consumer, entry_id, min_idle_ms):
                claimed.append((eid, fields, item["deliveries"] + 1))
            if len(claimed) >= limit:
                break
        return claimed

    def claim(self, execution_id: str, consumer: str, deliveries: int) -> Claim:
        """Decide what to do with a delivered execution, atomically with respect to its record:

        - record missing -> `missing` (the entry goes to the dead letters);
        - final status (incl. cancelled) -> `done`: acknowledge, never run again;
        - pending/running by a live other owner -> `busy`: hand the entry back to that owner;
        - queued, or pending/running/lost by a dead owner -> `run` (rerun=True for the latter):
          the record becomes `pending`, owned by `consumer`, with `deliveries` and a history line.
        """
        def decide(rec: dict[str, Any]) -> tuple[Claim, dict[str, Any] | None]:
            if not rec:
                return Claim("missing"), None
            status, owner = rec.get("status", ""), rec.get("owner", "")
            if status in FINAL_STATUSES:
                return Claim("done", rec), None
            rerun = False
            if status in LIVE_STATUSES:
                if owner and owner != consumer and self.store.owners.alive(owner):
                    return Claim("busy", rec, previous_owner=owner), None
                rerun = True
            elif status == Status.LOST:
                rerun = True
            elif status != Status.QUEUED:
                return Claim("missing", rec), None
            now = time.time()
            history = list(rec.get("history") or [])
            if rerun:
                history.append({"owner": owner, "status": status, "error": rec.get("error") or "", "at": now})
            fields = {"status": Status.PENDING, "owner": consumer, "host": consumer.rsplit(".", 2)[0],
                      "claimed_at": now, "deliveries": deliveries, "history": history, "error": "",
                      "error_phase": ""}
            return Claim("run", rec, rerun=rerun, previous_owner=owner if rerun else ""), fields

        return self.stored.claim_record(execution_id, decide)

    def ack(self, entry_id: str) -> None:
        """Done with an entry: acknowledge and delete it (the stream holds unfinished entries only)."""
        self.stored.ack(self.group, entry_id)

    def hand_over(self, entry_id: str, consumer: str) -> None:
        """Give a pending entry to another consumer (its live owner, or RELEASED_CONSUMER so any
        worker may take it) without counting a delivery."""
        self.stored.hand_over(self.group, entry_id, consumer)

    def requeue(self, execution_id: str) -> None:
        """Put a claimed-but-not-started execution back to `queued` (this worker cannot run it now)."""
        self.store.records.update_guarded(execution_id, {"status": Status.QUEUED, "owner": "", "host": ""},
                                          status=Status.PENDING)

    def fail(self, execution_id: str, error: str, phase: str = "prepare") -> bool:
        """Final `error` for an execution that could not start (unless it already ended)."""
        return self.stored.fail(execution_id, error, phase)

    def dead_letter(self, entry_id: str, fields: Mapping[str, str], reason: str, deliveries: int) -> None:
        """Move an entry to `P queue:dead` with the reason; its record ends as `error`."""
        execution_id = fields.get("execution", "")
        job = fields.get("job", "")
        self.stored.dead_letter(self.group, entry_id, {
            "execution": execution_id, "job": job, "reason": reason, "deliveries": str(deliveries),
            "entry": entry_id, "at": repr(time.time()), "host": socket.gethostname()})
        if execution_id:
            self.fail(execution_id, f"dead-lettered: {reason}", phase="queue")
            self.stored.release_slot(job, execution_id)

    def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        return self.stored.dead_letters(count)

    # --- cancelling --------------------------------------------------------------------------
    def cancel(self, execution_id: str, reason: str) -> str:
        """`cancelled` (was queued: now final), `requested` (the owning worker will stop it),
        `missing`, or `final:<status>` (already ended). Works from any host."""
        return self.stored.cancel(execution_id, reason, ttl=CANCEL_REQUEST_TTL)

    def cancel_requested(self, execution_id: str) -> str | None:
        """The reason, when someone asked to cancel this execution."""
        return self.stored.cancel_reasons([execution_id]).get(execution_id)

    # --- after an execution ended -------------------------------------------------------------
    def follow_up(self, execution_id: str, registry: DeploymentRegistry) -> list[Enqueued]:
        """Enqueue what an ended execution causes — its retry (deployment `retries`) and the
        workflow successors whose edge matches — once: ids are derived from this execution, and
        the record remembers that follow-ups were done. Releases the job's concurrency slot."""
        rec = self.store.records.get(execution_id)
        status = rec.get("status")
        if status not in FINAL_STATUSES:
            return []
        job_name = rec.get("job_id", "")
        done: list[Enqueued] = []
        if rec.get("followups") != "done" and rec.get("definition"):
            definition = JobDefinition.from_json(json.dumps(rec["definition"]))
            attempt = int(rec.get("attempt") or 1)
            meta = dict(rec.get("metadata") or {})
            retrying = status in definition.retries.on and attempt <= definition.retries.limit
            if retrying:
                delay = definition.retries.delay(attempt)
                done.append(self.enqueue(
                    definition, input=rec.get("input"), trigger="retry",
                    execution_id=derived_execution_id(execution_id, "retry"), attempt=attempt + 1,
                    retry_of=execution_id, not_before=time.time() + delay,
                    metadata={k: v for k, v in meta.items() if k not in ("trigger", "scheduled_for", "retry_of")}))
            if status != "cancelled":
                for edge in registry.successors(job_name):
                    if retrying and edge.when in ("failed", "always"):
                        continue  # wait for the last attempt
                    if not edge.matches(status, rec.get("condition")):
                        continue
                    try:
                        successor = registry.job(edge.job)
                    except NotFound:
                        continue
                    output = rec.get("output")
                    done.append(self.enqueue(
                        successor, input=output if output is not None else successor.input, trigger="workflow",
                        execution_id=derived_execution_id(execution_id, "next", edge.job),
                        metadata={"parent_execution": execution_id, "parent_job": job_name,
                                  "parent_status": status, "edge": edge.when}))
            self.store.records.update(execution_id, {"followups": "done"})
        self.stored.release_slot(job_name, execution_id)
        return done

    # --- inspection --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Queue depth for `cronium queue status` and the metrics."""
        raw = self.stored.stats(self.group)
        consumers = raw["consumers"]
        for c in consumers:
            c["alive"] = c["name"] != RELEASED_CONSUMER and self.store.owners.alive(c["name"])
        length, pending, lag = raw["length"], raw["pending"], raw["lag"]
        waiting = lag if lag is not None else max(0, length - pending)
        return {"length": length, "waiting": int(waiting), "pending": pending, "delayed": raw["delayed"],
                "dead_letters": raw["dead_letters"], "consumers": consumers}

    def forget_dead_consumers(self, min_idle: float) -> list[str]:
        """Delete consumers that hold no pending entry and whose heartbeat expired (never one with
        pending entries: deleting a consumer drops them)."""
        removed = []
        for c in self.stored.consumers(self.group):
            name = c["name"]
            if c["pending"] or c["idle_ms"] < min_idle * 1000 or name == RELEASED_CONSUMER:
                continue
            if self.store.owners.alive(name):
                continue
            self.stored.delete_consumer(self.group, name)
            removed.append(name)
        return removed

    def leave(self, consumer: str) -> None:
        """Delete `consumer` from the group if it holds no pending entry (a stopping worker)."""
        if any(c["name"] == consumer and c["pending"] == 0 for c in self.stored.consumers(self.group)):
            self.stored.delete_consumer(self.group, consumer)
