"""The store: cronium's one boundary to Redis.

`Store` holds the connection and turns every connection failure into `StoreUnavailable` (never a
redis-py traceback); each aggregate has a repository that owns every Redis command on it:

    store.records      execution records, the executions index, the live set                  (records.py)
    store.variables    variables per namespace                                                (variables.py)
    store.owners       owner heartbeats                                                       (owners.py)
    store.acl          Redis ACL users (the sidecar's per-execution credentials)              (acl.py)
    store.pool_claims  which execution a claimed pooled object serves                        (pool_claims.py)
    store.logs         log streams                                                            (logs.py)
    store.deployments  deployments, their jobs and scripts, the deploy generation             (deployments.py)
    store.queue        the queue stream and group, delayed/active sets, dead letters, cancels (queue.py)
    store.schedules    the schedulers' leader lease, each scheduled job's state               (schedules.py)
    store.uids         per-execution uid claims (security.per_execution_uid)                  (uids.py)

`probe.py` PINGs a server that may still be starting (the managed Redis). Nothing outside this
package sends a Redis command (tests/unit/test_store_boundary.py checks it). Key layout: `keys.py`
and docs/architecture.md.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import redis

from ..config import mask_url
from ..errors import StoreFull, StoreUnavailable
from .acl import AclUsers
from .deployments import Deployments
from .keys import Keys
from .logs import LogStreams
from .owners import Owners
from .pool_claims import PoolClaims
from .queue import WorkQueue
from .records import ExecutionRecords
from .schedules import Schedules
from .spool import RecordSpool
from .uids import UidClaims
from .variables import Variables, validate_variable_key

#: Connections one process may hold at once. redis-py 8 caps a pool at 100 unless told, and a worker or
#: an in-process caller with more than 100 jobs in flight (each job holds one for its log stream and
#: records) then failed them with "Too many connections"; Redis's own default `maxclients` bounds it.
MAX_CONNECTIONS = 10_000

__all__ = ["Store", "Keys", "RecordSpool", "validate_variable_key"]


class Store:
    """The orchestrator's view of Redis: one connection pool, one guard, a repository per aggregate."""

    def __init__(self, url: str, *, prefix: str = "cronium:", connect_timeout: float = 3.0,
                 command_timeout: float = 5.0, hint: str | None = None):
        self.url = url
        self.keys = Keys(prefix)
        self._hint = hint
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout,
                                          socket_timeout=command_timeout,
                                          health_check_interval=30, decode_responses=False,
                                          max_connections=MAX_CONNECTIONS)
        self.records = ExecutionRecords(self)
        self.variables = Variables(self)
        self.owners = Owners(self)
        self.acl = AclUsers(self)
        self.pool_claims = PoolClaims(self)
        self.logs = LogStreams(self)
        self.deployments = Deployments(self)
        self.queue = WorkQueue(self)
        self.schedules = Schedules(self)
        self.uids = UidClaims(self)

    @contextmanager
    def guard(self, *, key: str | None = None) -> Iterator[None]:
        """Redis errors -> cronium errors: unreachable -> `StoreUnavailable`; out of memory
        (`maxmemory` with `noeviction`) -> `StoreFull` naming `key`, the key being written."""
        try:
            yield
        except redis.exceptions.OutOfMemoryError:
            raise StoreFull(key) from None
        except redis.ResponseError as exc:
            if "OOM command not allowed" in str(exc):  # raised inside a Lua script
                raise StoreFull(key) from None
            raise
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"{mask_url(self.url)}: {exc}", hint=self._hint) from None
        except redis.AuthenticationError as exc:
            raise StoreUnavailable(f"{mask_url(self.url)}: authentication failed ({exc})",
                                   hint="check the password in redis.url") from None

    def ping(self) -> None:
        with self.guard():
            self.redis.ping()

    def server_info(self) -> dict[str, Any]:
        """The `INFO server` section (version, mode)."""
        with self.guard():
            return self.redis.info("server")

    def memory_limits(self) -> dict[str, Any]:
        """`maxmemory` (bytes, 0 = none), `maxmemory_policy` and `used_memory` of the server; the
        first two are None when the server refuses CONFIG GET (a hosted Redis may)."""
        with self.guard():
            used = self.redis.info("memory").get("used_memory")
            try:
                conf = self.redis.config_get("maxmemory*")
            except redis.ResponseError:
                conf = {}
        text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in conf.items()}
        limit = text.get("maxmemory")
        return {"maxmemory": int(limit) if limit is not None else None,
                "maxmemory_policy": text.get("maxmemory-policy"), "used_memory": used}

    def close(self) -> None:
        self.redis.close()
