"""Redis access for the orchestrator: execution records, variables, log streams, heartbeats.

Key layout: see docs/architecture.md. Every method raises `StoreUnavailable` (never a redis-py
traceback) when Redis does not answer.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import redis

from ..config import mask_url
from ..errors import NotFound, StoreUnavailable, UsageError
from ..model import LIVE_STATUSES, dumps
from ..record import decode as decode_record
from ..record import encode as _encode

VARIABLE_KEY_MAX = 256


def validate_variable_key(key: str) -> str:
    import re
    if not 1 <= len(key) <= VARIABLE_KEY_MAX or not re.match(r"^[A-Za-z0-9_.:-]+$", key):
        raise UsageError(f"invalid variable name {key!r}: use 1-{VARIABLE_KEY_MAX} letters, digits, '_', '.', ':' or '-'")
    return key


class Keys:
    def __init__(self, prefix: str):
        self.prefix = prefix

    def execution(self, execution_id: str) -> str:
        return f"{self.prefix}exec:{execution_id}"

    def variables(self, namespace: str) -> str:
        return f"{self.prefix}vars:{namespace}"

    def logs(self, execution_id: str) -> str:
        return f"{self.prefix}logs:{execution_id}"

    @property
    def executions(self) -> str:
        return f"{self.prefix}executions"

    @property
    def live(self) -> str:
        """Set of executions whose status is not final (what the reaper's record sweep looks at)."""
        return f"{self.prefix}live"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    def acl_user(self, execution_id: str) -> str:
        return f"cronium-{execution_id}"

    # --- deployments (core/deploy/registry.py) ---------------------------------------------------------
    @property
    def deployments(self) -> str:
        return f"{self.prefix}deployments"

    def deployment(self, name: str) -> str:
        return f"{self.prefix}deployment:{name}"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    def job(self, name: str) -> str:
        return f"{self.prefix}job:{name}"

    def script(self, digest: str) -> str:
        return f"{self.prefix}script:{digest}"

    @property
    def deploy_generation(self) -> str:
        return f"{self.prefix}deploy:generation"

    # --- queue (core/fleet/queue.py) ----------------------------------------------------------------
    @property
    def queue(self) -> str:
        return f"{self.prefix}queue"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}queue:dead"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}queue:delayed"

    def active(self, job: str) -> str:
        return f"{self.prefix}active:{job}"

    def cancel(self, execution_id: str) -> str:
        return f"{self.prefix}cancel:{execution_id}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}cancel"

    @property
    def owner_pattern(self) -> str:
        return f"{self.prefix}owner:*"

    # --- scheduler (core/fleet/scheduler.py) --------------------------------------------------------
    @property
    def scheduler_lease(self) -> str:
        return f"{self.prefix}scheduler:leader"

    def schedule_state(self, job: str) -> str:
        return f"{self.prefix}schedule:{job}"


class Store:
    """The orchestrator's view of Redis."""

    def __init__(self, url: str, *, prefix: str = "cronium:", connect_timeout: float = 3.0,
                 command_timeout: float = 5.0, hint: str | None = None):
        self.url = url
        self.keys = Keys(prefix)
        self._hint = hint
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout,
                                          socket_timeout=command_timeout,
                                          health_check_interval=30, decode_responses=False)

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"{mask_url(self.url)}: {exc}", hint=self._hint) from None
        except redis.AuthenticationError as exc:
            raise StoreUnavailable(f"{mask_url(self.url)}: authentication failed ({exc})",
                                   hint="check the password in redis.url") from None

    def ping(self) -> None:
        with self.guard():
            self.redis.ping()

    # --- execution records -------------------------------------------------------------------
    def create_execution(self, execution_id: str, fields: Mapping[str, Any], *, created_at: float) -> None:
        with self.guard():
            pipe = self.redis.pipeline()
            pipe.hset(self.keys.execution(execution_id), mapping=_encode(fields))
            pipe.zadd(self.keys.executions, {execution_id: created_at})
            self._track_live(pipe, execution_id, fields)
            pipe.execute()

    def update_execution(self, execution_id: str, fields: Mapping[str, Any]) -> None:
        with self.guard():
            if "status" not in fields:
                self.redis.hset(self.keys.execution(execution_id), mapping=_encode(fields))
                return
            pipe = self.redis.pipeline()
            pipe.hset(self.keys.execution(execution_id), mapping=_encode(fields))
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
    -- execution id, then field/value pairs.
    if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
    if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
    for i = 4, #ARGV, 2 do
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
        if ARGV[i] == 'status' then
            if ARGV[i + 1] == 'pending' or ARGV[i + 1] == 'running' then
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
        args: list[str] = [status, owner, execution_id]
        for k, v in _encode(fields).items():
            args += [k, v]
        with self.guard():
            return bool(self.redis.eval(self._GUARDED_UPDATE, 2, self.keys.execution(execution_id),
                                        self.keys.live, *args))

    _MARK_LOST = """
    local status = redis.call('HGET', KEYS[1], 'status')
    local owner = redis.call('HGET', KEYS[1], 'owner') or ''
    if not status or (ARGV[1] ~= '' and owner ~= ARGV[1]) then return 0 end
    for i = 4, #ARGV do
        if status == ARGV[i] then
            redis.call('HSET', KEYS[1], 'status', 'lost', 'error', ARGV[2], 'finished_at', ARGV[3])
            return 1
        end
    end
    return 0
    """

    def mark_lost(self, execution_id: str, *, owner: str, error: str, statuses: tuple[str, ...]) -> bool:
        """Set status `lost` only while the status is one of `statuses` and the record is still
        owned by `owner` (empty: any owner). Atomic; True when the record was changed."""
        with self.guard():
            return bool(self.redis.eval(self._MARK_LOST, 1, self.keys.execution(execution_id), owner, error,
                                        str(time.time()), *statuses))

    def claim_execution(self, execution_id: str, fields: Mapping[str, Any], *, created_at: float) -> bool:
        """Create the record only if it does not exist yet or is not final-successful.

        Returns False when the execution already succeeded (idempotent re-delivery).
        """
        key = self.keys.execution(execution_id)
        with self.guard():
            status = self.redis.hget(key, "status")
            if status == b"succeeded":
                return False
            self.create_execution(execution_id, fields, created_at=created_at)
            return True

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        with self.guard():
            raw = self.redis.hgetall(self.keys.execution(execution_id))
        if not raw:
            raise NotFound(f"no execution '{execution_id}'", hint="list executions with `cronium jobs list`")
        return decode_record(raw)

    def execution_exists(self, execution_id: str) -> bool:
        with self.guard():
            return bool(self.redis.exists(self.keys.execution(execution_id)))

    def list_executions(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.guard():
            ids = self.redis.zrevrange(self.keys.executions, 0, limit - 1)
            pipe = self.redis.pipeline()
            for i in ids:
                pipe.hgetall(self.keys.execution(i.decode()))
            rows = pipe.execute()
        return [decode_record(r) for r in rows if r]

    # --- variables ---------------------------------------------------------------------------
    def get_variable(self, namespace: str, key: str) -> Any:
        validate_variable_key(key)
        with self.guard():
            raw = self.redis.hget(self.keys.variables(namespace), key)
        if raw is None:
            raise NotFound(f"no variable '{key}' in namespace '{namespace}'")
        return json.loads(raw)

    def set_variable(self, namespace: str, key: str, value: Any) -> None:
        validate_variable_key(key)
        with self.guard():
            self.redis.hset(self.keys.variables(namespace), key, dumps(value))

    def delete_variable(self, namespace: str, key: str) -> bool:
        validate_variable_key(key)
        with self.guard():
            return bool(self.redis.hdel(self.keys.variables(namespace), key))

    def list_variables(self, namespace: str) -> dict[str, Any]:
        with self.guard():
            raw = self.redis.hgetall(self.keys.variables(namespace))
        return {k.decode(): json.loads(v) for k, v in sorted(raw.items())}

    # --- heartbeats --------------------------------------------------------------------------
    def heartbeat(self, owner: str, ttl: float, info: Mapping[str, Any] | None = None) -> None:
        with self.guard():
            self.redis.set(self.keys.owner(owner), dumps({"t": time.time(), **(info or {})}), px=int(ttl * 1000))

    def owner_alive(self, owner: str) -> bool:
        with self.guard():
            return bool(self.redis.exists(self.keys.owner(owner)))

    def drop_owner(self, owner: str) -> None:
        with self.guard():
            self.redis.delete(self.keys.owner(owner))


class RecordSpool:
    """Final execution records that could not be written because Redis was down, kept as local
    files (0600) and written when Redis answers again — by the same process before it exits, or
    by the next cronium process that starts on this host."""

    def __init__(self, directory):
        from pathlib import Path

        self.dir = Path(directory)

    def put(self, execution_id: str, fields: Mapping[str, Any]) -> None:
        import os

        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{execution_id}.json"
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing.update(fields)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(existing, fh)
        tmp.replace(path)

    def pending(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("exec_*.json")) if self.dir.is_dir() else []

    def flush(self, store: "Store") -> list[str]:
        """Write every spooled record; returns the ids written. Raises StoreUnavailable if Redis
        is still down (nothing is lost: the files stay)."""
        written = []
        for execution_id in self.pending():
            path = self.dir / f"{execution_id}.json"
            fields = json.loads(path.read_text())
            store.update_execution(execution_id, fields)
            path.unlink()
            written.append(execution_id)
        return written
