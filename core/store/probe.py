"""PING a Redis server that may still be starting (the managed Redis, core/host/services.py)."""
from __future__ import annotations

import redis

#: What `ServerProbe.ping` answers besides the name of a transient error.
OK, PASSWORD_REJECTED, PASSWORD_REFUSED = "ok", "password-rejected", "password-refused"


class ServerProbe:
    """One client for repeated PINGs of a server on this host, with a password."""

    def __init__(self, host: str, port: int, password: str, *, connect_timeout: float = 1.0, timeout: float = 2.0):
        self._client = redis.Redis(host=host, port=port, password=password, socket_connect_timeout=connect_timeout,
                                   socket_timeout=timeout)

    def ping(self) -> str:
        """`OK`; `PASSWORD_REJECTED` (authentication failed) or `PASSWORD_REFUSED` (NOAUTH /
        WRONGPASS); else the name of the error that says it does not answer yet (a connection
        error, a timeout, BusyLoadingError while it loads its data, another error reply)."""
        try:
            return OK if self._client.ping() else "no answer"
        except redis.exceptions.AuthenticationError:
            return PASSWORD_REJECTED
        except redis.exceptions.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                return PASSWORD_REFUSED
            return type(exc).__name__
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            return type(exc).__name__  # BusyLoadingError is a ConnectionError: AOF still loading

    def close(self) -> None:
        self._client.close()
