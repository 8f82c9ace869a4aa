"""A small asyncio Redis client: what the sidecar's store needs and nothing more.

redis-py loads every command, cluster, search and JSON module the sidecar never calls (about
6 MB of a 34 MB process) and spends more time per command than the round trip itself. This
client speaks RESP2 over asyncio streams (TCP, TLS for `rediss://`, or a unix socket):

- a bounded pool: at most `max_connections` connections; a caller waits up to `command_timeout`
  for a free one (then `RespTimeout`);
- on connect, `AUTH` (when the URL has a password) and `SELECT` (only when the URL names a
  database other than 0), pipelined: one round trip;
- every command has `command_timeout`; a connection that timed out or broke is closed, never
  reused; a command that fails on a reused connection the server had closed is sent once more
  on a fresh one;
- replies: simple strings, errors (`RespReplyError`, or `RespAuthError` for NOAUTH/WRONGPASS),
  integers, bulk strings (decoded as UTF-8), arrays (nested), nil (None).
"""
from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlsplit


class RespError(Exception):
    """Base of this client's errors."""


class RespConnectionError(RespError):
    """The server cannot be reached, or closed the connection."""


class RespTimeout(RespConnectionError):
    """No free connection, or no reply, within the timeout."""


class RespReplyError(RespError):
    """The server answered a command with an error."""


class RespAuthError(RespReplyError):
    """The server refused the credentials (NOAUTH, WRONGPASS, WRONGTYPE of AUTH)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, *commands: tuple) -> list:
        """Send the commands in one write and read one reply each (pipelined)."""
        self.writer.write(b"".join(_encode(command) for command in commands))
        await self.writer.drain()
        return [await _read_reply(self.reader) for _ in commands]

    def close(self) -> None:
        self.writer.close()


class RespClient:
    """A pool of RESP connections to the server a `redis://`, `rediss://` or `unix://` URL names."""

    def __init__(self, url: str, *, max_connections: int, connect_timeout: float, command_timeout: float) -> None:
        parts = urlsplit(url)
        self._scheme, self._host, self._port = parts.scheme, parts.hostname or "localhost", parts.port or 6379
        self._path = parts.path
        self._handshake: list[tuple] = []
        if parts.password is not None:
            password = unquote(parts.password)
            self._handshake.append(("AUTH", unquote(parts.username), password) if parts.username else ("AUTH", password))
        database = parts.path.strip("/") if parts.scheme != "unix" else ""
        if database not in ("", "0"):
            self._handshake.append(("SELECT", database))
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.max_connections = max_connections

    async def execute(self, *command) -> object:
        """Run one command and return its reply (a `RespReplyError` reply is raised)."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.command_timeout)
        except asyncio.TimeoutError:
            raise RespTimeout(f"no free connection within {self.command_timeout} s") from None
        try:
            reused = bool(self._idle)
            connection = self._idle.pop() if reused else await self._connect()
            try:
                reply = (await self._call(connection, command))[0]
            except RespTimeout:
                raise
            except RespConnectionError:
                if not reused:
                    raise
                connection = await self._connect()  # the server closed an idle connection: once more
                reply = (await self._call(connection, command))[0]
            self._idle.append(connection)
        finally:
            self._slots.release()
        if isinstance(reply, RespReplyError):
            raise reply
        return reply

    async def _call(self, connection: _Connection, *commands: tuple) -> list:
        """The replies to `commands`, pipelined; a connection that fails (or is cancelled) is closed."""
        try:
            async with asyncio.timeout(self.command_timeout):
                return await connection.call(*commands)
        except asyncio.TimeoutError:
            connection.close()
            raise RespTimeout(f"no reply from Redis within {self.command_timeout} s") from None
        except (OSError, EOFError, RespConnectionError) as exc:
            connection.close()
            raise RespConnectionError(f"the connection to Redis broke: {exc or type(exc).__name__}") from None
        except BaseException:
            connection.close()
            raise

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self._scheme == "unix":
                    reader, writer = await asyncio.open_unix_connection(self._path)
                else:
                    reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls())
        except asyncio.TimeoutError:
            raise RespTimeout(f"connecting to Redis timed out after {self.connect_timeout} s") from None
        except OSError as exc:
            raise RespConnectionError(f"cannot connect to Redis: {exc.strerror or exc}") from None
        connection = _Connection(reader, writer)
        for reply in await self._call(connection, *self._handshake) if self._handshake else ():
            if isinstance(reply, RespReplyError):
                connection.close()
                raise reply
        return connection

    def _tls(self):
        if self._scheme != "rediss":
            return None
        import ssl

        return ssl.create_default_context()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _encode(command: tuple) -> bytes:
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


async def _read_reply(reader: asyncio.StreamReader) -> object:
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind == b"$":
        length = int(rest)
        return None if length < 0 else (await reader.readexactly(length + 2))[:-2].decode()
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest.decode()
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [await _read_reply(reader) for _ in range(count)]
    if kind == b"-":
        message = rest.decode("utf-8", "replace")
        auth = message.startswith(("NOAUTH", "WRONGPASS")) or "invalid password" in message
        return (RespAuthError if auth else RespReplyError)(message)
    raise RespConnectionError(f"Redis sent a reply this client cannot read ({kind!r})")
