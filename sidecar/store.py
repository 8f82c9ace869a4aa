"""Where execution fields and variables live: the `Store` protocol and its Redis implementation.

A store is bound to one execution and one namespace, so the sidecar can only reach the keys
docs/architecture.md allows: it reads the record hash `<prefix>exec:<execution id>`, writes its
results (`output`, `condition`) to its own hash `<prefix>exec:<execution id>:out`, and reads and
writes its namespace's variables (`<prefix>vars:<namespace>` and its `:versions` and `:meta` hashes,
through the scripts of `variable_script`, which check versions and quotas atomically). Values cross
this interface as JSON text and are stored verbatim.

Redis commands used: PING, HGET, HSET, EVAL; on connect AUTH (when the URL has credentials), and
SELECT only for a URL naming another database than 0 (the per-execution ACL user may not run it, so
its URL names database 0). One Redis connection per sidecar, with at most `MAX_IN_FLIGHT` commands
outstanding on it (a request waits for a slot). The client is the sidecar's own small one (`resp`),
not redis-py: see its docstring.
"""
from __future__ import annotations

import logging
from typing import Protocol

from .errors import QuotaExceededError, StoreUnavailableError, VariableNotFoundError, VersionConflictError
from .resp import RespAuthError, RespClient, RespConnectionError, RespError
from .variable_script import READ, WRITE, VariableLimits, WriteOutcome, namespace_keys, quota_message, write_args

log = logging.getLogger("cronium.sidecar.store")

#: The variable scripts as sent with every EVAL, encoded once.
READ_SCRIPT, WRITE_SCRIPT = READ.encode(), WRITE.encode()

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0
#: Commands one sidecar may have outstanding on its one Redis connection (a hostile job must not
#: fill the server's clients or its query buffers).
MAX_IN_FLIGHT = 4


class Store(Protocol):
    """Storage for one execution's fields and its namespace's variables (JSON text in and out).

    Every method raises `StoreUnavailableError` when the backing store cannot serve the call.
    Variable writes take `expected`: None for any version, else the version the variable must
    have (0: absent), and raise `VersionConflictError` otherwise, `QuotaExceededError` when a
    namespace quota would be exceeded.
    """

    async def ping(self) -> None:
        """Check that the store answers."""

    async def read_execution_field(self, name: str) -> str | None:
        """The JSON text of a record field the orchestrator wrote (`input`, `context`), or None."""

    async def write_result(self, name: str, json_text: str) -> None:
        """Set one of the execution's results (`output`, `condition`) in its own results hash."""

    async def read_variable(self, key: str) -> tuple[str | None, int]:
        """(JSON text of the variable or None when it is not set, its version; 0 when not set)."""

    async def write_variable(self, key: str, json_text: str, expected: int | None = None) -> int:
        """Set a variable; returns its new version."""

    async def delete_variable(self, key: str, expected: int | None = None) -> None:
        """Remove a variable; `VariableNotFoundError` when it was not set."""

    async def close(self) -> None:
        """Release connections."""


class RedisStore:
    """`Store` on Redis hashes, with short timeouts so an unreachable server fails fast."""

    def __init__(self, url: str, key_prefix: str, execution_id: str, namespace: str,
                 limits: VariableLimits = VariableLimits()) -> None:
        self.execution_key = f"{key_prefix}exec:{execution_id}"
        self.results_key = f"{self.execution_key}:out"
        self.namespace, self.limits = namespace, limits
        self.variable_keys = namespace_keys(key_prefix, namespace)
        self.client = RespClient(url, max_in_flight=MAX_IN_FLIGHT, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                 command_timeout=COMMAND_TIMEOUT_SECONDS)

    async def ping(self) -> None:
        await self._run("PING")

    async def read_execution_field(self, name: str) -> str | None:
        return await self._run("HGET", self.execution_key, name)

    async def write_result(self, name: str, json_text: str) -> None:
        await self._run("HSET", self.results_key, name, json_text)

    async def read_variable(self, key: str) -> tuple[str | None, int]:
        text, version = await self._run("EVAL", READ_SCRIPT, 2, *self.variable_keys[:2], key)
        return text, int(version)

    async def write_variable(self, key: str, json_text: str, expected: int | None = None) -> int:
        return (await self._write("set", key, json_text, expected)).detail

    async def delete_variable(self, key: str, expected: int | None = None) -> None:
        await self._write("delete", key, "", expected)

    async def _write(self, operation: str, key: str, json_text: str, expected: int | None) -> WriteOutcome:
        args = write_args(operation, key, json_text, expected, self.limits)
        outcome = WriteOutcome.from_reply(await self._run("EVAL", WRITE_SCRIPT, 3, *self.variable_keys, *args))
        if outcome.outcome == "ok":
            return outcome
        if outcome.outcome == "conflict":
            raise VersionConflictError(conflict_message(key, expected, outcome.detail), outcome.detail)
        if outcome.outcome == "missing":
            raise VariableNotFoundError(f"variable '{key}' is not set in namespace '{self.namespace}'")
        raise QuotaExceededError(quota_message(outcome, self.limits, key, self.namespace))

    async def close(self) -> None:
        await self.client.close()

    async def _run(self, *command):
        try:
            return await self.client.execute(*command)
        except RespAuthError:
            log.warning("the store rejected the sidecar's credentials")
            raise StoreUnavailableError("the store (Redis) rejected the sidecar's credentials") from None
        except RespConnectionError as exc:
            log.warning("the store is unreachable: %s", exc)
            raise StoreUnavailableError(
                "the store (Redis) cannot be reached; the request was not carried out, retry later"
            ) from None
        except RespError as exc:
            log.warning("the store refused a command: %s", exc)
            raise StoreUnavailableError("the store (Redis) refused the request") from None


def conflict_message(key: str, expected: int | None, current: int) -> str:
    now = "is not set" if current == 0 else f"is at version {current}"
    return (f"variable '{key}' {now}, not at version {expected} (If-Match); "
            "read it again and retry with its current version")
