"""The job queue's keys: the stream `P queue` and its consumer group, `P queue:delayed` (zset
"<execution> <job>" -> time it may run), `P active:<job>` (sets), the dead letters `P queue:dead`,
the cancel keys `P cancel:<id>` and the channel `P cancel`.

The repository owns the Redis commands and Lua scripts; what they mean for an execution (the
concurrency policy, the claim decision, follow-ups) is `core/fleet/queue.py`. Status lists reach
the Lua scripts as arguments, from the sets in core/model.py.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

import redis

from ..errors import StoreUnavailable
from ..model import FINAL_STATUSES, LIVE_STATUSES, Status
from ..record import decode, encode

if TYPE_CHECKING:
    from . import Store

T = TypeVar("T")

#: An execution in one of these statuses is (or was) run by an owner: cancelling it asks that owner.
CANCEL_BY_REQUEST = (*LIVE_STATUSES, Status.LOST)
#: Attempts at claiming a record while other writers change it.
CLAIM_ATTEMPTS = 20


class WorkQueue:
    """Every Redis command on the queue. Methods that work on the stream take the consumer group."""

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
    -- KEYS: record, cancel key, active set, delayed zset.
    -- ARGV: reason, now, channel, id, ttl, the queued status, the cancelled status, then the
    -- statuses in which the owner is asked to stop the execution.
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return 'missing' end
    if status == ARGV[6] then
        redis.call('HSET', KEYS[1], 'status', ARGV[7], 'finished_at', ARGV[2], 'error', ARGV[1])
        redis.call('SREM', KEYS[3], ARGV[4])
        local job = redis.call('HGET', KEYS[1], 'job_id') or ''
        redis.call('ZREM', KEYS[4], ARGV[4] .. ' ' .. job)
        return 'cancelled'
    end
    for i = 8, #ARGV do
        if status == ARGV[i] then
            redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
            redis.call('PUBLISH', ARGV[3], ARGV[4])
            return 'requested'
        end
    end
    return 'final:' .. status
    """

    _FAIL_IF_UNFINISHED = """
    -- KEYS: record, live set. ARGV: error, now, phase, the error status, id, then the final
    -- statuses. Final 'error' unless the record is already final.
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return 0 end
    for i = 6, #ARGV do
        if status == ARGV[i] then return 0 end
    end
    redis.call('HSET', KEYS[1], 'status', ARGV[4], 'error', ARGV[1], 'finished_at', ARGV[2], 'error_phase', ARGV[3])
    redis.call('SREM', KEYS[2], ARGV[5])
    return 1
    """

    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    # --- producing ---------------------------------------------------------------------------
    def enqueue(self, execution_id: str, job: str, record: Mapping[str, Any], *, policy: str, now: float,
                not_before: float | None) -> tuple[bool, str]:
        """Create the record, take a slot in the job's active set and add the stream entry (or the
        delayed one, when `not_before` is later than `now`), atomically. Nothing happens when the
        record exists (-> False, "exists") or when `policy` is forbid and the job has an active
        execution (-> False, "busy"). Else -> True and the entry id, or "delayed"."""
        args: list[str] = [execution_id, repr(now), policy, repr(not_before or 0), repr(now), job]
        for k, v in encode(record).items():
            args += [k, v]
        keys = [self.keys.execution(execution_id), self.keys.executions, self.keys.queue, self.keys.delayed,
                self.keys.active(job)]
        with self.store.guard(key=self.keys.execution(execution_id)):
            created, detail = self.redis.eval(self._ENQUEUE, len(keys), *keys, *args)
        return bool(created), _s(detail)

    def active(self, job: str, statuses: Iterable[str]) -> list[str]:
        """The job's executions whose record is in one of `statuses`; the other members (ended, or
        vanished) are removed from the active set."""
        key = self.keys.active(job)
        allowed = set(statuses)
        with self.store.guard():
            members = sorted(m.decode() for m in self.redis.smembers(key))
            if not members:
                return []
            pipe = self.redis.pipeline(transaction=False)
            for m in members:
                pipe.hget(self.keys.execution(m), "status")
            found = pipe.execute()
            stale = [m for m, s in zip(members, found) if s is None or s.decode() not in allowed]
            if stale:
                self.redis.srem(key, *stale)
        return [m for m in members if m not in stale]

    def release_slot(self, job: str, execution_id: str) -> None:
        """Remove the execution from the job's active set."""
        with self.store.guard():
            self.redis.srem(self.keys.active(job), execution_id)

    def promote_delayed(self, now: float) -> int:
        """Move delayed executions due at `now` into the stream; returns how many."""
        with self.store.guard():
            return int(self.redis.eval(self._PROMOTE, 2, self.keys.delayed, self.keys.queue, repr(now)))

    # --- consuming ---------------------------------------------------------------------------
    def ensure_group(self, group: str) -> None:
        with self.store.guard():
            try:
                self.redis.xgroup_create(self.keys.queue, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[tuple[str, dict[str, str]]]:
        """New entries for this consumer: (entry id, fields). Creates the group when it is missing."""
        try:
            with self.store.guard():
                reply = self.redis.xreadgroup(group, consumer, {self.keys.queue: ">"}, count=count, block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group(group)
            return []
        return [(eid.decode(), _text(fields)) for _, entries in reply or [] for eid, fields in entries if fields]

    def pending(self, group: str, *, min_idle_ms: int, count: int = 100) -> list[dict[str, Any]]:
        """Delivered, unacknowledged entries idle for at least `min_idle_ms`: {entry, consumer,
        deliveries}. Creates the group when it is missing."""
        with self.store.guard():
            try:
                pending = self.redis.xpending_range(self.keys.queue, group, "-", "+", count, idle=min_idle_ms)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.ensure_group(group)
                return []
        return [{"entry": _s(p["message_id"]), "consumer": _s(p["consumer"]),
                 "deliveries": int(p["times_delivered"])} for p in pending]

    def take(self, group: str, consumer: str, entry_id: str, min_idle_ms: int) -> list[tuple[str, dict[str, str]]]:
        """`XCLAIM` one pending entry for `consumer` if it is still idle for `min_idle_ms` (so of
        concurrent claimers only the first gets it): [(entry id, fields)] or []. An entry deleted
        from the stream but left pending is acknowledged instead (nothing to run)."""
        taken = []
        with self.store.guard():
            for eid, fields in self.redis.xclaim(self.keys.queue, group, consumer, min_idle_ms, [entry_id]):
                if fields:
                    taken.append((_s(eid), _text(fields)))
                else:
                    self.redis.xack(self.keys.queue, group, eid)
        return taken

    def claim_record(self, execution_id: str, decide: Callable[[dict[str, Any]], tuple[T, Mapping[str, Any] | None]]) -> T:
        """Optimistic transaction on one record: `decide(record)` (decoded; {} when missing) returns
        (result, fields to write or None); the fields are written only if the record did not
        change meanwhile, else `decide` runs again on the new version. Returns the result."""
        key = self.keys.execution(execution_id)
        with self.store.guard():
            for _ in range(CLAIM_ATTEMPTS):
                with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key)
                        result, fields = decide(decode(pipe.hgetall(key)))
                        if fields is None:
                            return result
                        pipe.multi()
                        pipe.hset(key, mapping=encode(fields))
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue
        raise StoreUnavailable(f"the record of {execution_id} kept changing while it was claimed")

    def ack(self, group: str, entry_id: str) -> None:
        """Acknowledge and delete an entry."""
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(self.keys.queue, group, entry_id)
            pipe.xdel(self.keys.queue, entry_id)
            pipe.execute()

    def hand_over(self, group: str, entry_id: str, consumer: str) -> None:
        """Give a pending entry to another consumer without counting a delivery."""
        with self.store.guard():
            self.redis.xclaim(self.keys.queue, group, consumer, 0, [entry_id], justid=True)

    def fail(self, execution_id: str, error: str, phase: str) -> bool:
        """Status `error` (with the error and its phase) unless the record is final or missing. Atomic."""
        with self.store.guard():
            return bool(self.redis.eval(self._FAIL_IF_UNFINISHED, 2, self.keys.execution(execution_id),
                                        self.keys.live, error, repr(time.time()), phase, Status.ERROR,
                                        execution_id, *FINAL_STATUSES))

    def dead_letter(self, group: str, entry_id: str, letter: Mapping[str, str]) -> None:
        """Add `letter` to `P queue:dead`, acknowledge and delete the entry, atomically."""
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=True)
            pipe.xadd(self.keys.dead_letters, dict(letter))
            pipe.xack(self.keys.queue, group, entry_id)
            pipe.xdel(self.keys.queue, entry_id)
            pipe.execute()

    def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest dead letters first, each with its `entry` id and `letter_id` (its own id in
        `P queue:dead`)."""
        with self.store.guard():
            entries = self.redis.xrevrange(self.keys.dead_letters, count=count)
        return [{"entry": _s(eid), **_text(fields), "letter_id": _s(eid)} for eid, fields in entries]

    def remove_dead_letter(self, letter_id: str) -> bool:
        """Delete one entry of `P queue:dead` (by its `letter_id`: it was requeued); False when it was not there."""
        with self.store.guard():
            return bool(self.redis.xdel(self.keys.dead_letters, letter_id))

    # --- cancelling --------------------------------------------------------------------------
    def cancel(self, execution_id: str, reason: str, *, ttl: int) -> str:
        """A queued execution becomes `cancelled` (-> "cancelled"); for one an owner runs, the
        cancel key is set for `ttl` seconds and the id published on the cancel channel
        (-> "requested"); else "missing" or "final:<status>"."""
        with self.store.guard():
            job_id = self.redis.hget(self.keys.execution(execution_id), "job_id")
            job = job_id.decode() if job_id else ""
            keys = [self.keys.execution(execution_id), self.keys.cancel(execution_id), self.keys.active(job),
                    self.keys.delayed]
            result = self.redis.eval(self._CANCEL, len(keys), *keys, reason, repr(time.time()),
                                     self.keys.cancel_channel, execution_id, ttl, Status.QUEUED, Status.CANCELLED,
                                     *CANCEL_BY_REQUEST)
        return _s(result)

    def cancel_reasons(self, execution_ids: Iterable[str]) -> dict[str, str]:
        """The reasons of the executions someone asked to cancel, among these."""
        ids = list(execution_ids)
        if not ids:
            return {}
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=False)
            for execution_id in ids:
                pipe.get(self.keys.cancel(execution_id))
            reasons = pipe.execute()
        return {i: r.decode() for i, r in zip(ids, reasons) if r is not None}

    def cancel_requests(self) -> "CancelRequests":
        """A subscription to the cancel channel (close it when done)."""
        return CancelRequests(self.store)

    # --- inspection --------------------------------------------------------------------------
    def stats(self, group: str) -> dict[str, Any]:
        """Stream length, delayed and dead-letter counts; with the group: its pending count, lag
        (None when unknown) and consumers ({name, pending, idle_ms}) — 0 / None / [] before the
        stream or the group exists."""
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=False)
            pipe.xlen(self.keys.queue)
            pipe.zcard(self.keys.delayed)
            pipe.xlen(self.keys.dead_letters)
            length, delayed, dead = pipe.execute()
            pending, consumers, lag = 0, [], None
            try:
                summary = self.redis.xpending(self.keys.queue, group)
                pending = int(summary.get("pending") or 0)
                consumers = self._consumers(group)
                for info in self.redis.xinfo_groups(self.keys.queue):
                    if _s(info["name"]) == group:
                        lag = info.get("lag")
            except redis.ResponseError:
                pass  # no stream or group yet
        return {"length": length, "delayed": delayed, "dead_letters": dead, "pending": pending, "lag": lag,
                "consumers": consumers}

    def consumers(self, group: str) -> list[dict[str, Any]]:
        """The group's consumers: {name, pending, idle_ms} ([] before the group exists)."""
        with self.store.guard():
            try:
                return self._consumers(group)
            except redis.ResponseError:
                return []

    def _consumers(self, group: str) -> list[dict[str, Any]]:
        return [{"name": _s(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"])}
                for c in self.redis.xinfo_consumers(self.keys.queue, group)]

    def delete_consumer(self, group: str, consumer: str) -> None:
        """Remove a consumer from the group (its pending entries, if any, are dropped with it)."""
        with self.store.guard():
            self.redis.xgroup_delconsumer(self.keys.queue, group, consumer)


class CancelRequests:
    """A subscription to the cancel channel: the ids of executions someone asked to cancel."""

    def __init__(self, store: "Store"):
        self.store = store
        with store.guard():
            self._pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(store.keys.cancel_channel)

    def next(self, timeout: float) -> str | None:
        """The next execution id published, waiting up to `timeout` seconds; None when there was none."""
        with self.store.guard():
            message = self._pubsub.get_message(timeout=timeout)
        if message and message.get("type") == "message":
            return _s(message["data"])
        return None

    def close(self) -> None:
        try:
            self._pubsub.close()
        except Exception:  # the connection is gone already
            pass


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in fields.items()}
