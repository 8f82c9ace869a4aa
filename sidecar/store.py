"""Where execution fields and variables live: the `Store` protocol and its Redis implementation.

A store is bound to one execution and one namespace, so the sidecar can only reach the two keys
docs/architecture.md allows: the hash `<prefix>exec:<execution id>` and the hash
`<prefix>vars:<namespace>`. Values cross this interface as JSON text and are stored verbatim.

Redis commands used: PING, HGET, HSET, HDEL; on connect AUTH (when the URL has credentials),
CLIENT SETINFO (failures ignored) and SELECT (only when the URL names a database other than 0).
"""
from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .errors import StoreUnavailableError

log = logging.getLogger("cronium.sidecar.store")

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0


class Store(Protocol):
    """Storage for one execution's fields and its namespace's variables (JSON text in and out).

    Every method raises `StoreUnavailableError` when the backing store cannot serve the call.
    """

    async def ping(self) -> None:
        """Check that the store answers."""

    async def read_execution_field(self, name: str) -> str | None:
        """The JSON text of an execution field (`input`, `context`, ...), or None when absent."""

    async def write_execution_field(self, name: str, json_text: str) -> None:
        """Set an execution field (`output`, `condition`)."""

    async def read_variable(self, key: str) -> str | None:
        """The JSON text of a variable, or None when it is not set."""

    async def write_variable(self, key: str, json_text: str) -> None:
        """Set a variable."""

    async def delete_variable(self, key: str) -> bool:
        """Remove a variable; False when it was not set."""

    async def close(self) -> None:
        """Release connections."""


class RedisStore:
    """`Store` on Redis hashes, with short timeouts so an unreachable server fails fast."""

    def __init__(self, url: str, key_prefix: str, execution_id: str, namespace: str) -> None:
        self.execution_key = f"{key_prefix}exec:{execution_id}"
        self.variables_key = f"{key_prefix}vars:{namespace}"
        self.client = redis.Redis.from_url(
            url,
            protocol=2,  # RESP2: plain AUTH on connect, no HELLO; works with every Redis version
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),  # one immediate retry covers a pooled connection the server closed
        )

    async def ping(self) -> None:
        await self._run(self.client.ping())

    async def read_execution_field(self, name: str) -> str | None:
        return await self._run(self.client.hget(self.execution_key, name))

    async def write_execution_field(self, name: str, json_text: str) -> None:
        await self._run(self.client.hset(self.execution_key, name, json_text))

    async def read_variable(self, key: str) -> str | None:
        return await self._run(self.client.hget(self.variables_key, key))

    async def write_variable(self, key: str, json_text: str) -> None:
        await self._run(self.client.hset(self.variables_key, key, json_text))

    async def delete_variable(self, key: str) -> bool:
        return bool(await self._run(self.client.hdel(self.variables_key, key)))

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    async def _run(command):
        try:
            return await command
        except RedisAuthenticationError:
            log.warning("the store rejected the sidecar's credentials")
            raise StoreUnavailableError("the store (Redis) rejected the sidecar's credentials") from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("the store is unreachable: %s", exc)
            raise StoreUnavailableError(
                "the store (Redis) cannot be reached; the request was not carried out, retry later"
            ) from None
        except RedisError as exc:
            log.warning("the store refused a command: %s", exc)
            raise StoreUnavailableError("the store (Redis) refused the request") from None
