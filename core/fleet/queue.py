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

import redis

from ..deploy.definition import JobDefinition
from ..deploy.registry import DeploymentRegistry
from ..errors import NotFound, StoreUnavailable
from ..model import ACTIVE_STATUSES, FINAL_STATUSES, LIVE_STATUSES, Status, dumps
from ..record import decode as decode_record
from ..record import encode, iso, new_record

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store

#: A pseudo-consumer that never has a heartbeat: entries handed to it are free for any worker.
RELEASED_CONSUMER = "cronium-released"


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
    """Enqueue, claim, acknowledge, cancel and inspect executions on the Redis Stream."""

    _ENQUEUE = """
    -- KEYS: record, executions zset, queue stream, delayed zset, active set
    -- ARGV: id, created_at, policy, not_before (0 = now), now, job, field/value pairs...
    if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'exists'} end
    if ARGV[3] == 'forbid' and redis.call('SCARD', KEYS[5]) > 0 then return {0, 'busy'} end
    local fields = {}
    for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
    redis.call('HSET', KEYS[1], unpack(fields))
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
    redis.call('SADD', KEYS[5], ARGV[1])
    if tonumber(ARGV[4]) > tonumber(ARGV[5]) then
        redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1] .. ' ' .. ARGV[6])
        return {1, 'delayed'}
    end
    local entry = redis.call('XADD', KEYS[3], '*', 'execution', ARGV[1], 'job', ARGV[6])
    return {1, entry}
    """

    _PROMOTE = """
    -- KEYS: delayed zset, queue stream. ARGV: now. Moves due members into the stream, once each.
    local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
    local moved = 0
    for _, member in ipairs(due) do
        if redis.call('ZREM', KEYS[1], member) == 1 then
            local sep = string.find(member, ' ', 1, true)
            redis.call('XADD', KEYS[2], '*', 'execution', string.sub(member, 1, sep - 1),
                       'job', string.sub(member, sep + 1))
            moved = moved + 1
        end
    end
    return moved
    """

    _CANCEL = """
    -- KEYS: record, cancel key, active set, delayed zset. ARGV: reason, now, channel, id, ttl
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return 'missing' end
    if status == 'queued' then
        redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[2], 'error', ARGV[1])
        redis.call('SREM', KEYS[3], ARGV[4])
        local job = redis.call('HGET', KEYS[1], 'job_id') or ''
        redis.call('ZREM', KEYS[4], ARGV[4] .. ' ' .. job)
        return 'cancelled'
    end
    if status == 'pending' or status == 'running' or status == 'lost' then
        redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 'requested'
    end
    return 'final:' .. status
    """

    _FAIL_IF_UNFINISHED = """
    -- KEYS: record. ARGV: error, now, phase. Final 'error' unless the record is already final.
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return 0 end
    for _, s in ipairs({'succeeded', 'failed', 'timed_out', 'oom_killed', 'cancelled', 'error'}) do
        if status == s then return 0 end
    end
    redis.call('HSET', KEYS[1], 'status', 'error', 'error', ARGV[1], 'finished_at', ARGV[2], 'error_phase', ARGV[3])
    return 1
    """

    def __init__(self, store: "Store", config: "Config"):
        self.store = store
        self.config = config
        self.keys = store.keys
        self.redis = store.redis
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
        args: list[str] = [execution_id, repr(now), policy, repr(not_before or 0), repr(now), job.name]
        for k, v in encode(record).items():
            args += [k, v]
        keys = [self.keys.execution(execution_id), self.keys.executions, self.keys.queue, self.keys.delayed,
                self.keys.active(job.name)]
        with self.store.guard():
            created, detail = self.redis.eval(self._ENQUEUE, len(keys), *keys, *args)
        detail = detail.decode() if isinstance(detail, bytes) else str(detail)
        if not created:
            return Enqueued(execution_id, False, reason=detail, replaced=replaced)
        return Enqueued(execution_id, True, replaced=replaced,
                        delayed_until=not_before if detail == "delayed" else None)

    def active_executions(self, job: str) -> list[str]:
        """The job's executions still active; members whose record ended (or vanished) are pruned."""
        key = self.keys.active(job)
        with self.store.guard():
            members = sorted(m.decode() for m in self.redis.smembers(key))
            if not members:
                return []
            pipe = self.redis.pipeline(transaction=False)
            for m in members:
                pipe.hget(self.keys.execution(m), "status")
            statuses = pipe.execute()
            stale = [m for m, s in zip(members, statuses) if s is None or s.decode() not in ACTIVE_STATUSES]
            if stale:
                self.redis.srem(key, *stale)
        return [m for m in members if m not in stale]

    def promote_delayed(self) -> int:
        """Move delayed executions whose time has come into the stream (safe from any process)."""
        with self.store.guard():
            return int(self.redis.eval(self._PROMOTE, 2, self.keys.delayed, self.keys.queue, repr(time.time())))

    # --- consuming ---------------------------------------------------------------------------
    def ensure_group(self) -> None:
        with self.store.guard():
            try:
                self.redis.xgroup_create(self.keys.queue, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, dict[str, str], int]]:
        """New entries for this consumer: (entry id, fields, deliveries)."""
        try:
            with self.store.guard():
                reply = self.redis.xreadgroup(self.group, consumer, {self.keys.queue: ">"}, count=count,
                                              block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return []
        return [(eid.decode(), _text(fields), 1) for _, entries in reply or [] for eid, fields in entries if fields]

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
        with self.store.guard():
            try:
                pending = self.redis.xpending_range(self.keys.queue, self.group, "-", "+", 100, idle=min_idle_ms)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self.ensure_group()
                    return []
                raise
            alive: dict[str, bool] = {}
            claimed = []
            for item in pending:
                entry_id = _s(item["message_id"])
                holder = _s(item["consumer"])
                if holder == consumer:
                    if entry_id in in_flight:
                        continue
                elif holder != RELEASED_CONSUMER:
                    if holder not in alive:
                        alive[holder] = bool(self.redis.exists(self.keys.owner(holder)))
                    if alive[holder]:
                        continue
                got = self.redis.xclaim(self.keys.queue, self.group, consumer, min_idle_ms, [entry_id])
                for eid, fields in got:
                    if fields:
                        claimed.append((_s(eid), _text(fields), int(item["times_delivered"]) + 1))
                    else:  # deleted from the stream but left pending: nothing to run
                        self.redis.xack(self.keys.queue, self.group, eid)
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
        key = self.keys.execution(execution_id)
        with self.store.guard():
            for _ in range(20):
                with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key)
                        raw = pipe.hgetall(key)
                        if not raw:
                            return Claim("missing")
                        rec = decode_record(raw)
                        status, owner = rec.get("status", ""), rec.get("owner", "")
                        if status in FINAL_STATUSES:
                            return Claim("done", rec)
                        rerun = False
                        if status in LIVE_STATUSES:
                            if owner and owner != consumer and self.redis.exists(self.keys.owner(owner)):
                                return Claim("busy", rec, previous_owner=owner)
                            rerun = True
                        elif status == "lost":
                            rerun = True
                        elif status != "queued":
                            return Claim("missing", rec)
                        now = time.time()
                        history = list(rec.get("history") or [])
                        if rerun:
                            history.append({"owner": owner, "status": status, "error": rec.get("error") or "",
                                            "at": now})
                        pipe.multi()
                        pipe.hset(key, mapping={"status": "pending", "owner": consumer,
                                                "host": consumer.rsplit(".", 2)[0], "claimed_at": repr(now),
                                                "deliveries": str(deliveries), "history": dumps(history),
                                                "error": "", "error_phase": ""})
                        pipe.execute()
                        return Claim("run", rec, rerun=rerun, previous_owner=owner if rerun else "")
                    except redis.WatchError:
                        continue
        raise StoreUnavailable(f"the record of {execution_id} kept changing while it was claimed")

    def ack(self, entry_id: str) -> None:
        """Done with an entry: acknowledge and delete it (the stream holds unfinished entries only)."""
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(self.keys.queue, self.group, entry_id)
            pipe.xdel(self.keys.queue, entry_id)
            pipe.execute()

    def hand_over(self, entry_id: str, consumer: str) -> None:
        """Give a pending entry to another consumer (its live owner, or RELEASED_CONSUMER so any
        worker may take it) without counting a delivery."""
        with self.store.guard():
            self.redis.xclaim(self.keys.queue, self.group, consumer, 0, [entry_id], justid=True)

    def requeue(self, execution_id: str) -> None:
        """Put a claimed-but-not-started execution back to `queued` (this worker cannot run it now)."""
        self.store.records.update_guarded(execution_id, {"status": "queued", "owner": "", "host": ""}, status="pending")

    def fail(self, execution_id: str, error: str, phase: str = "prepare") -> bool:
        """Final `error` for an execution that could not start (unless it already ended)."""
        with self.store.guard():
            return bool(self.redis.eval(self._FAIL_IF_UNFINISHED, 1, self.keys.execution(execution_id), error,
                                        repr(time.time()), phase))

    def dead_letter(self, entry_id: str, fields: Mapping[str, str], reason: str, deliveries: int) -> None:
        """Move an entry to `P queue:dead` with the reason; its record ends as `error`."""
        execution_id = fields.get("execution", "")
        job = fields.get("job", "")
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=True)
            pipe.xadd(self.keys.dead_letters, {"execution": execution_id, "job": job, "reason": reason,
                                               "deliveries": str(deliveries), "entry": entry_id,
                                               "at": repr(time.time()), "host": socket.gethostname()})
            pipe.xack(self.keys.queue, self.group, entry_id)
            pipe.xdel(self.keys.queue, entry_id)
            pipe.execute()
        if execution_id:
            self.fail(execution_id, f"dead-lettered: {reason}", phase="queue")
            with self.store.guard():
                self.redis.srem(self.keys.active(job), execution_id)

    def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        with self.store.guard():
            entries = self.redis.xrevrange(self.keys.dead_letters, count=count)
        return [{"entry": _s(eid), **_text(fields)} for eid, fields in entries]

    # --- cancelling --------------------------------------------------------------------------
    def cancel(self, execution_id: str, reason: str) -> str:
        """`cancelled` (was queued: now final), `requested` (the owning worker will stop it),
        `missing`, or `final:<status>` (already ended). Works from any host."""
        with self.store.guard():
            job_id = self.redis.hget(self.keys.execution(execution_id), "job_id")
            job = job_id.decode() if job_id else ""
            keys = [self.keys.execution(execution_id), self.keys.cancel(execution_id), self.keys.active(job),
                    self.keys.delayed]
            result = self.redis.eval(self._CANCEL, len(keys), *keys, reason, repr(time.time()),
                                     self.keys.cancel_channel, execution_id, 7 * 24 * 3600)
        return _s(result)

    def cancel_requested(self, execution_id: str) -> str | None:
        """The reason, when someone asked to cancel this execution."""
        with self.store.guard():
            value = self.redis.get(self.keys.cancel(execution_id))
        return value.decode() if value is not None else None

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
        with self.store.guard():
            self.redis.srem(self.keys.active(job_name), execution_id)
        return done

    # --- inspection --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Queue depth for `cronium queue status` and the metrics."""
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=False)
            pipe.xlen(self.keys.queue)
            pipe.zcard(self.keys.delayed)
            pipe.xlen(self.keys.dead_letters)
            length, delayed, dead = pipe.execute()
            pending, consumers, lag = 0, [], None
            try:
                summary = self.redis.xpending(self.keys.queue, self.group)
                pending = int(summary.get("pending") or 0)
                consumers = [{"name": _s(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"])}
                             for c in self.redis.xinfo_consumers(self.keys.queue, self.group)]
                for group in self.redis.xinfo_groups(self.keys.queue):
                    if _s(group["name"]) == self.group:
                        lag = group.get("lag")
            except redis.ResponseError:
                pass  # no stream or group yet
            for c in consumers:
                c["alive"] = c["name"] != RELEASED_CONSUMER and bool(self.redis.exists(self.keys.owner(c["name"])))
        waiting = lag if lag is not None else max(0, length - pending)
        return {"length": length, "waiting": int(waiting), "pending": pending, "delayed": delayed,
                "dead_letters": dead, "consumers": consumers}

    def forget_dead_consumers(self, min_idle: float) -> list[str]:
        """Delete consumers that hold no pending entry and whose heartbeat expired (never one with
        pending entries: deleting a consumer drops them)."""
        removed = []
        with self.store.guard():
            try:
                consumers = self.redis.xinfo_consumers(self.keys.queue, self.group)
            except redis.ResponseError:
                return []
            for c in consumers:
                name = _s(c["name"])
                if int(c["pending"]) or int(c["idle"]) < min_idle * 1000 or name == RELEASED_CONSUMER:
                    continue
                if self.redis.exists(self.keys.owner(name)):
                    continue
                self.redis.xgroup_delconsumer(self.keys.queue, self.group, name)
                removed.append(name)
        return removed

    def heartbeats(self) -> list[dict[str, Any]]:
        """Every live owner's heartbeat (workers, schedulers, `cronium run`s): owner, kind, last beat."""
        out = []
        with self.store.guard():
            for key in self.redis.scan_iter(match=self.keys.owner_pattern, count=500):
                value = self.redis.get(key)
                if value is None:
                    continue
                try:
                    info = json.loads(value)
                except ValueError:
                    continue
                out.append({"owner": _s(key)[len(self.keys.owner("")):], **info})
        return sorted(out, key=lambda i: i["owner"])


class CancelWatcher:
    """Turns `cronium cancel` requests for one execution into `cancellation.cancel()` in a process
    that is not a worker (e.g. `cronium run`): pub/sub, plus a look at the cancel key every second
    (a message published before we subscribed is not missed)."""

    def __init__(self, store: "Store", execution_id: str, cancellation):
        import threading

        self.store, self.execution_id, self.cancellation = store, execution_id, cancellation
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cronium-cancel-watch", daemon=True)

    def start(self) -> "CancelWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        keys = self.store.keys
        pubsub = None
        while not self._stop.is_set() and not self.cancellation.is_set:
            try:
                if pubsub is None:
                    pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(keys.cancel_channel)
                reason = self.store.redis.get(keys.cancel(self.execution_id))
                deadline = time.monotonic() + 1.0
                while reason is None and time.monotonic() < deadline and not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and _s(message.get("data")) == self.execution_id:
                        reason = self.store.redis.get(keys.cancel(self.execution_id)) or b"cancelled"
                if reason is not None:
                    self.cancellation.cancel(_s(reason))
            except Exception:  # Redis down: the job goes on; try again
                pubsub = None
                self._stop.wait(1.0)
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                pass


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in fields.items()}
