"""Execution records: `P exec:<id>` hashes, the `P executions` index and the `P live` set."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import NotFound
from ..model import FINAL_STATUSES, LIVE_STATUSES, Status
from ..record import decode, encode

if TYPE_CHECKING:
    from . import Store


class ExecutionRecords:
    """Every Redis command on execution records. The `P live` set always holds exactly the
    executions whose status is live (what the reaper's record sweep looks at)."""

    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    def create(self, execution_id: str, fields: Mapping[str, Any], *, created_at: float) -> None:
        with self.store.guard(key=self.keys.execution(execution_id)):
            pipe = self.redis.pipeline()
            pipe.hset(self.keys.execution(execution_id), mapping=encode(fields))
            pipe.zadd(self.keys.executions, {execution_id: created_at})
            self._track_live(pipe, execution_id, fields)
            pipe.execute()

    def create_many(self, records: Sequence[tuple[str, Mapping[str, Any], float]], *, chunk: int = 1000) -> int:
        """`create` for many (execution id, fields, created_at) at once, pipelined `chunk` records a
        round trip (not one transaction: seeding, imports). Returns how many were written."""
        for start in range(0, len(records), chunk):
            with self.store.guard(key=self.keys.executions):
                pipe = self.redis.pipeline(transaction=False)
                for execution_id, fields, created_at in records[start:start + chunk]:
                    pipe.hset(self.keys.execution(execution_id), mapping=encode(fields))
                    pipe.zadd(self.keys.executions, {execution_id: created_at})
                    self._track_live(pipe, execution_id, fields)
                pipe.execute()
        return len(records)

    def update(self, execution_id: str, fields: Mapping[str, Any]) -> None:
        with self.store.guard(key=self.keys.execution(execution_id)):
            if "status" not in fields:
                self.redis.hset(self.keys.execution(execution_id), mapping=encode(fields))
                return
            pipe = self.redis.pipeline()
            pipe.hset(self.keys.execution(execution_id), mapping=encode(fields))
            self._track_live(pipe, execution_id, fields)
            pipe.execute()

    def _track_live(self, pipe, execution_id: str, fields: Mapping[str, Any]) -> None:
        status = fields.get("status")
        if status in LIVE_STATUSES:
            pipe.sadd(self.keys.live, execution_id)
        elif status is not None:
            pipe.srem(self.keys.live, execution_id)

    _GUARDED_UPDATE = """
    -- KEYS: record, live set. ARGV: expected status ('' = any), expected owner ('' = any),
    -- execution id, n, the n live statuses, then field/value pairs.
    if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
    if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
    local n = tonumber(ARGV[4])
    local live = {}
    for i = 5, 4 + n do live[ARGV[i]] = true end
    for i = 5 + n, #ARGV, 2 do
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
        if ARGV[i] == 'status' then
            if live[ARGV[i + 1]] then
                redis.call('SADD', KEYS[2], ARGV[3])
            else
                redis.call('SREM', KEYS[2], ARGV[3])
            end
        end
    end
    return 1
    """

    def update_guarded(self, execution_id: str, fields: Mapping[str, Any], *, status: str = "",
                       owner: str = "") -> bool:
        """Update only while the record's status is `status` and its owner is `owner` (either may
        be empty: no condition). Atomic. Guards against a stale write landing after a newer one: a
        'running' sent before a Redis outage and applied after the final status, or the final write
        of a worker that was cut off after another worker took the execution over."""
        args: list[str] = [status, owner, execution_id, str(len(LIVE_STATUSES)), *LIVE_STATUSES]
        for k, v in encode(fields).items():
            args += [k, v]
        with self.store.guard(key=self.keys.execution(execution_id)):
            return bool(self.redis.eval(self._GUARDED_UPDATE, 2, self.keys.execution(execution_id),
                                        self.keys.live, *args))

    _MARK_LOST = """
    -- KEYS: record, live set. ARGV: owner ('' = any), error, now, execution id, lost status,
    -- then the statuses the record may be in.
    local status = redis.call('HGET', KEYS[1], 'status')
    local owner = redis.call('HGET', KEYS[1], 'owner') or ''
    if not status or (ARGV[1] ~= '' and owner ~= ARGV[1]) then return 0 end
    for i = 6, #ARGV do
        if status == ARGV[i] then
            redis.call('HSET', KEYS[1], 'status', ARGV[5], 'error', ARGV[2], 'finished_at', ARGV[3])
            redis.call('SREM', KEYS[2], ARGV[4])
            return 1
        end
    end
    return 0
    """

    def mark_lost(self, execution_id: str, *, owner: str, error: str,
                  statuses: Sequence[str] = LIVE_STATUSES) -> bool:
        """Set status `lost` only while the status is one of `statuses` and the record is still
        owned by `owner` (empty: any owner). Atomic; True when the record was changed."""
        with self.store.guard():
            return bool(self.redis.eval(self._MARK_LOST, 2, self.keys.execution(execution_id), self.keys.live,
                                        owner, error, str(time.time()), execution_id, Status.LOST, *statuses))

    def get(self, execution_id: str) -> dict[str, Any]:
        with self.store.guard():
            raw = self.redis.hgetall(self.keys.execution(execution_id))
        if not raw:
            raise NotFound(f"no execution '{execution_id}'", hint="list executions with `cronium jobs list`")
        return decode(raw)

    def values(self, execution_id: str, names: Sequence[str]) -> dict[str, Any]:
        """Some fields of one record, decoded; absent fields are missing from the result."""
        with self.store.guard():
            raw = self.redis.hmget(self.keys.execution(execution_id), list(names))
        return decode({n.encode(): v for n, v in zip(names, raw) if v is not None})

    def status(self, execution_id: str) -> str | None:
        with self.store.guard():
            raw = self.redis.hget(self.keys.execution(execution_id), "status")
        return raw.decode() if raw is not None else None

    def exists(self, execution_id: str) -> bool:
        with self.store.guard():
            return bool(self.redis.exists(self.keys.execution(execution_id)))

    def latest(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` records, newest first."""
        with self.store.guard():
            ids = self.redis.zrevrange(self.keys.executions, 0, limit - 1)
            pipe = self.redis.pipeline()
            for i in ids:
                pipe.hgetall(self.keys.execution(i.decode()))
            rows = pipe.execute()
        return [decode(r) for r in rows if r]

    def window(self, *, since: float | None = None, offset: int = 0, count: int = 500,
               until: float | None = None) -> list[str]:
        """Execution ids from the `P executions` index (scored by creation time), newest first:
        `count` of them from `offset`, created at or after `since` and before `until` (None: any
        time). Never a SCAN."""
        with self.store.guard():
            ids = self.redis.zrevrangebyscore(self.keys.executions, "+inf" if until is None else f"({until}",
                                              "-inf" if since is None else since, start=offset, num=count)
        return [i.decode() for i in ids]

    _MATCHING = """
    -- KEYS: records. ARGV: n, the n wanted statuses (n = 0: any), namespace, job, since, until ('' = any).
    local n = tonumber(ARGV[1])
    local wanted = {}
    for i = 2, 1 + n do wanted[ARGV[i]] = true end
    local ns, job = ARGV[2 + n], ARGV[3 + n]
    local since, before = tonumber(ARGV[4 + n]), tonumber(ARGV[5 + n])
    local out = {}
    for i, key in ipairs(KEYS) do
        local v = redis.call('HMGET', key, 'status', 'namespace', 'job_id', 'job_name', 'created_at')
        local created = tonumber(v[5] or '') or 0
        if v[1] and (n == 0 or wanted[v[1]]) and (ns == '' or v[2] == ns)
           and (job == '' or v[3] == job or v[4] == job)
           and (not since or created >= since) and (not before or created < before) then
            out[#out + 1] = i
        end
    end
    return out
    """

    def matching(self, ids: Sequence[str], *, statuses: Sequence[str] = (), namespace: str | None = None,
                 job: str | None = None, since: float | None = None, until: float | None = None) -> list[str]:
        """Those of `ids` whose record exists and matches: status one of `statuses` (empty: any), the
        namespace, the job (its id or name), created in [since, until). Judged inside Redis (one
        round trip, nothing decoded here), in the order of `ids`."""
        if not ids:
            return []
        args = [str(len(statuses)), *(str(s) for s in statuses), namespace or "", job or "",
                "" if since is None else repr(since), "" if until is None else repr(until)]
        with self.store.guard():
            found = self.redis.eval(self._MATCHING, len(ids), *(self.keys.execution(i) for i in ids), *args)
        return [ids[int(i) - 1] for i in found]

    def live_ids(self) -> list[str]:
        """The members of the live set, as they are (read-only; `live()` also prunes stale ones)."""
        with self.store.guard():
            return [i.decode() for i in self.redis.smembers(self.keys.live)]

    def summaries(self, ids: Sequence[str], names: Sequence[str]) -> list[dict[str, Any]]:
        """Some fields of several records, decoded, in the order of `ids`; records that are gone
        are left out."""
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=False)
            for i in ids:
                pipe.hmget(self.keys.execution(i), list(names))
            rows = pipe.execute()
        out = []
        for values in rows:
            raw = {n.encode(): v for n, v in zip(names, values) if v is not None}
            if raw:
                out.append(decode(raw))
        return out

    def drop_fields(self, execution_id: str, names: Sequence[str]) -> None:
        """Remove fields of the record; dropping `output` or `condition` also removes the sidecar's
        results hash (what an earlier attempt's sidecar wrote there)."""
        with self.store.guard():
            pipe = self.redis.pipeline()
            pipe.hdel(self.keys.execution(execution_id), *names)
            if {"output", "condition"} & set(names):
                pipe.delete(self.keys.sidecar_results(execution_id))
            pipe.execute()

    def take_sidecar_results(self, execution_id: str) -> dict[str, Any]:
        """What the execution's sidecar wrote (`output`, `condition`; absent ones missing), decoded, and
        remove its results hash (atomically): the caller puts them in the final record. The sidecar may
        only read the record, so it never writes there itself."""
        with self.store.guard():
            pipe = self.redis.pipeline()
            pipe.hmget(self.keys.sidecar_results(execution_id), ["output", "condition"])
            pipe.delete(self.keys.sidecar_results(execution_id))
            raw, _ = pipe.execute()
        return decode({n.encode(): v for n, v in zip(("output", "condition"), raw) if v is not None})

    def live(self) -> list[dict[str, Any]]:
        """The records in the live set, as {id, status, owner, created_at}; members whose record is
        no longer live (final, or gone) are removed from the set on the way."""
        with self.store.guard():
            ids = [i.decode() for i in self.redis.smembers(self.keys.live)]
            if not ids:
                return []
            pipe = self.redis.pipeline(transaction=False)
            for i in ids:
                pipe.hmget(self.keys.execution(i), ["status", "owner", "created_at"])
            rows = pipe.execute()
            out, stale = [], []
            for execution_id, (status, owner, created) in zip(ids, rows):
                if status is None or status.decode() not in LIVE_STATUSES:
                    stale.append(execution_id)
                    continue
                out.append({"id": execution_id, "status": status.decode(), "owner": (owner or b"").decode(),
                            "created_at": float(created) if created else None})
            if stale:
                self.redis.srem(self.keys.live, *stale)
        return out

    # --- retention -----------------------------------------------------------------------------
    def retention_candidates(self, *, created_before: float | None, keep_newest: int | None, offset: int,
                             limit: int) -> list[str]:
        """Up to `limit` execution ids, oldest first from `offset`, that retention may look at: those
        created before `created_before` or not among the newest `keep_newest` (either None: not a
        criterion). Both criteria select a prefix of the `P executions` index, so their union is
        the longer prefix."""
        with self.store.guard():
            total = self.redis.zcard(self.keys.executions)
            by_count = max(total - keep_newest, 0) if keep_newest is not None else 0
            by_age = self.redis.zcount(self.keys.executions, "-inf", f"({created_before}") \
                if created_before is not None else 0
            end = min(max(by_count, by_age), offset + limit)
            if end <= offset:
                return []
            ids = self.redis.zrange(self.keys.executions, offset, end - 1)
        return [i.decode() for i in ids]

    _REMOVE_FINISHED = """
    -- KEYS: record, executions index, live set, log stream, cancel key, sidecar results. ARGV: execution id,
    -- dry run ('1'/'0'), then the removable statuses. A record that is gone leaves only its index
    -- entry and stream behind: those go. A `lost` one of the queue (with a definition) may still run
    -- again: kept.
    local status = redis.call('HGET', KEYS[1], 'status')
    if status then
        local removable = false
        for i = 3, #ARGV do if status == ARGV[i] then removable = true end end
        if status == 'lost' and redis.call('HEXISTS', KEYS[1], 'definition') == 1 then removable = false end
        if not removable then return 0 end
    end
    if ARGV[2] == '1' then return 1 end
    redis.call('DEL', KEYS[1], KEYS[4], KEYS[5], KEYS[6])
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('SREM', KEYS[3], ARGV[1])
    return 1
    """

    def remove_finished(self, execution_ids: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """Remove the records of `execution_ids` that have ended — with their index entries, log
        streams, cancel keys and sidecar results — and return the ids removed (with `dry_run`: that would be). Each
        check-and-remove is atomic: a record that is queued, pending or running is never touched."""
        if not execution_ids:
            return []
        k = self.keys
        statuses = [*FINAL_STATUSES, Status.LOST]
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=False)
            for i in execution_ids:
                pipe.eval(self._REMOVE_FINISHED, 6, k.execution(i), k.executions, k.live, k.logs(i), k.cancel(i), k.sidecar_results(i),
                          i, "1" if dry_run else "0", *statuses)
            done = pipe.execute()
        return [i for i, ok in zip(execution_ids, done) if ok]
