"""A small asyncio Redis client: what the sidecar's store needs and nothing more.

redis-py loads every command, cluster, search and JSON module the sidecar never calls (about
6 MB of a 34 MB process) and spends more time per command than the round trip itself. This
client speaks RESP2 over an asyncio protocol (TCP, TLS for `rediss://`, or a unix socket) that
parses replies straight from the received bytes: one wake-up per round trip.

- one connection shared by all callers, opened on first use: the commands given in one turn of
  the event loop leave in one write (concurrent requests share a round trip), replies are matched
  to callers in order; at most `max_in_flight` commands are outstanding, a caller waits up to
  `command_timeout` for a slot (then `RespTimeout`);
- on connect, `AUTH` (when the URL has a password) and `SELECT` (only when the URL names a
  database other than 0), pipelined: one round trip;
- every command has `command_timeout`; a connection that timed out or broke is closed (the
  commands still waiting on it fail), never reused; a command that fails on a reused connection
  the server had closed is sent once more on a fresh one; a caller that is cancelled leaves the
  connection in use (its reply is read and dropped);
- replies: simple strings, errors (`RespReplyError`, or `RespAuthError` for NOAUTH/WRONGPASS),
  integers, bulk strings (decoded as UTF-8), arrays (nested), nil (None).
"""
from __future__ import annotations

import asyncio
from collections import deque
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


class _Incomplete(Exception):
    """The buffer does not hold a whole reply yet."""


class _Connection(asyncio.Protocol):
    """One connection shared by all callers: the commands given in one turn of the event loop leave
    in one write, and replies (RESP answers in order) are handed to their callers in order, parsed
    straight from the received bytes. One timer watches the oldest outstanding command: when it has
    waited `command_timeout`, every caller gets `RespTimeout` and the connection is closed."""

    def __init__(self, command_timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: deque[tuple[asyncio.Future, float]] = deque()  # (reply, deadline), in order
        self.outgoing: list[bytes] = []
        self.lost: Exception | None = None
        self.command_timeout = command_timeout
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, command: tuple) -> asyncio.Future:
        """A future of the reply to `command`; the command is written at the end of this loop turn."""
        if self.lost is not None:
            raise self.lost
        reply = self.loop.create_future()
        self.pending.append((reply, self.loop.time() + self.command_timeout))
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.command_timeout, self._check_deadline)
        if not self.outgoing:
            self.loop.call_soon(self._flush)
        self.outgoing.append(_encode(command))
        return reply

    def _check_deadline(self) -> None:
        self.watchdog = None
        if not self.pending:
            return
        deadline = self.pending[0][1]
        if self.loop.time() < deadline:
            self.watchdog = self.loop.call_at(deadline, self._check_deadline)
            return
        self._fail(RespTimeout(f"no reply from Redis within {self.command_timeout} s"))
        self.transport.close()

    def _flush(self) -> None:
        if self.lost is None:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        position = 0
        try:
            while self.pending:
                reply, position = _parse(self.buffer, position)
                waiter = self.pending.popleft()[0]
                if not waiter.done():  # a caller that gave up (cancelled) leaves its reply unread
                    waiter.set_result(reply)
        except _Incomplete:
            pass
        except (RespConnectionError, ValueError) as exc:  # an unreadable reply, or one not UTF-8
            self._fail(exc if isinstance(exc, RespConnectionError) else RespConnectionError(str(exc)))
            self.transport.close()
            return
        del self.buffer[:position]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(EOFError("the server closed the connection") if exc is None else exc)

    def _fail(self, exc: Exception) -> None:
        self.lost = self.lost or exc
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.pending:
            waiter = self.pending.popleft()[0]
            if not waiter.done():
                waiter.set_exception(exc)

    def close(self) -> None:
        self._fail(RespConnectionError("the connection was closed"))
        if self.transport is not None:
            self.transport.close()


class RespClient:
    """One shared connection to the server a `redis://`, `rediss://` or `unix://` URL names, with at
    most `max_in_flight` commands outstanding on it."""

    def __init__(self, url: str, *, max_in_flight: int, connect_timeout: float, command_timeout: float) -> None:
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
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_in_flight)
        self.max_in_flight = max_in_flight

    async def execute(self, *command) -> object:
        """Run one command and return its reply (a `RespReplyError` reply is raised)."""
        if self._slots.locked():  # wait_for costs a task: only when there is something to wait for
            try:
                await asyncio.wait_for(self._slots.acquire(), self.command_timeout)
            except asyncio.TimeoutError:
                raise RespTimeout(f"no free slot for a command within {self.command_timeout} s") from None
        else:
            await self._slots.acquire()
        try:
            connection = self._connection
            reused = connection is not None and connection.lost is None
            try:
                reply = (await self._call(connection if reused else await self._connected(), command))[0]
            except RespTimeout:
                raise
            except RespConnectionError:
                if not reused:
                    raise
                reply = (await self._call(await self._connected(), command))[0]  # the server closed it: once more
        finally:
            self._slots.release()
        if isinstance(reply, RespReplyError):
            raise reply
        return reply

    async def _call(self, connection: _Connection, *commands: tuple) -> list:
        """The replies to `commands` (pipelined); a connection that fails or times out is closed (its
        other callers get a connection error). A cancelled caller leaves the connection as it is."""
        try:
            return [await reply for reply in [connection.send(command) for command in commands]]
        except RespTimeout:
            connection.close()
            raise
        except (OSError, EOFError, RespConnectionError) as exc:
            connection.close()
            raise RespConnectionError(f"the connection to Redis broke: {exc or type(exc).__name__}") from None

    async def _connected(self) -> _Connection:
        """The shared connection, opened (once, whoever asks first) when there is none or it broke."""
        async with self._connecting:
            if self._connection is None or self._connection.lost is not None:
                self._connection = None
                self._connection = await self._connect()
            return self._connection

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                loop = asyncio.get_running_loop()
                if self._scheme == "unix":
                    _, connection = await loop.create_unix_connection(self._new_connection, self._path)
                else:
                    _, connection = await loop.create_connection(self._new_connection, self._host, self._port,
                                                                 ssl=self._tls())
        except asyncio.TimeoutError:
            raise RespTimeout(f"connecting to Redis timed out after {self.connect_timeout} s") from None
        except OSError as exc:
            raise RespConnectionError(f"cannot connect to Redis: {exc.strerror or exc}") from None
        for reply in await self._call(connection, *self._handshake) if self._handshake else ():
            if isinstance(reply, RespReplyError):
                connection.close()
                raise reply
        return connection

    def _new_connection(self) -> _Connection:
        return _Connection(self.command_timeout)

    def _tls(self):
        if self._scheme != "rediss":
            return None
        import ssl

        return ssl.create_default_context()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _encode(command: tuple) -> bytes:
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _parse(buffer: bytearray, start: int) -> tuple[object, int]:
    """The reply that begins at `start` and the offset after it, or `_Incomplete`."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        raise _Incomplete
    kind, rest = buffer[start:start + 1], bytes(buffer[start + 1:end])
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None, end + 2
        if len(buffer) < end + 4 + length:
            raise _Incomplete
        return buffer[end + 2:end + 2 + length].decode(), end + 4 + length
    if kind == b":":
        return int(rest), end + 2
    if kind == b"+":
        return rest.decode(), end + 2
    if kind == b"*":
        count, position, items = int(rest), end + 2, []
        if count < 0:
            return None, position
        for _ in range(count):
            item, position = _parse(buffer, position)
            items.append(item)
        return items, position
    if kind == b"-":
        message = rest.decode("utf-8", "replace")
        auth = message.startswith(("NOAUTH", "WRONGPASS")) or "invalid password" in message
        return (RespAuthError if auth else RespReplyError)(message), end + 2
    raise RespConnectionError(f"Redis sent a reply this client cannot read ({bytes(kind)!r})")
