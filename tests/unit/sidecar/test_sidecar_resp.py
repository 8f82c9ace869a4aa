"""The sidecar's own RESP client against a scripted server on loopback (the real Redis: the
integration tests in test_sidecar_store.py)."""
from __future__ import annotations

import asyncio

import pytest
from cronium.sidecar.resp import RespAuthError, RespClient, RespConnectionError, RespReplyError, RespTimeout


class FakeRedis:
    """Answers each command with the next canned reply for its name; records what it received."""

    def __init__(self, replies: dict[str, list[bytes]]):
        self.replies, self.received, self.connections = replies, [], 0
        self.close_after_each = False

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                command = await _read_command(reader)
                self.received.append(command)
                writer.write(self.replies[command[0]].pop(0))
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def _read_command(reader) -> list[str]:
    count = int((await reader.readuntil(b"\r\n"))[1:-2])
    parts = []
    for _ in range(count):
        length = int((await reader.readuntil(b"\r\n"))[1:-2])
        parts.append((await reader.readexactly(length + 2))[:-2].decode())
    return parts


def run_against(fake: FakeRedis, scenario, url_template="redis://{host}:{port}/0"):
    async def main():
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = RespClient(url_template.format(host="127.0.0.1", port=port), max_in_flight=2,
                            connect_timeout=1, command_timeout=0.5)
        try:
            return await scenario(client)
        finally:
            await client.close()
            server.close()

    return asyncio.run(main())


def test_replies_of_every_kind_and_auth_pipelined_on_connect():
    fake = FakeRedis({"AUTH": [b"+OK\r\n"], "PING": [b"+PONG\r\n"], "HGET": [b"$5\r\n\xc3\xa9t\xc3\xa9\r\n", b"$-1\r\n"],
                      "EVAL": [b"*2\r\n$2\r\nok\r\n$1\r\n7\r\n"], "HSET": [b":1\r\n"]})

    async def scenario(client):
        return [await client.execute("PING"), await client.execute("HGET", "k", "f"),
                await client.execute("HGET", "k", "g"), await client.execute("EVAL", "return 1", 0),
                await client.execute("HSET", "k", "f", "v")]

    replies = run_against(fake, scenario, "redis://user%40x:p%3Ass@{host}:{port}/0")
    assert replies == ["PONG", "été", None, ["ok", "7"], 1]
    assert fake.received[0] == ["AUTH", "user@x", "p:ss"]
    assert fake.connections == 1  # one connection, reused
    assert ["SELECT", "0"] not in fake.received


def test_error_replies_are_raised_and_auth_errors_are_told_apart():
    fake = FakeRedis({"AUTH": [b"-WRONGPASS invalid username-password pair\r\n"]})
    with pytest.raises(RespAuthError):
        run_against(fake, lambda client: client.execute("PING"), "redis://u:bad@{host}:{port}/0")
    fake = FakeRedis({"HSET": [b"-NOPERM this user has no permissions\r\n"], "PING": [b"+PONG\r\n"]})

    async def scenario(client):
        with pytest.raises(RespReplyError, match="NOPERM") as raised:
            await client.execute("HSET", "k", "f", "v")
        assert not isinstance(raised.value, RespAuthError)
        return await client.execute("PING")  # the connection is still good

    assert run_against(fake, scenario) == "PONG"


def test_a_database_other_than_0_is_selected_on_connect():
    fake = FakeRedis({"SELECT": [b"+OK\r\n"], "PING": [b"+PONG\r\n"]})
    run_against(fake, lambda client: client.execute("PING"), "redis://{host}:{port}/3")
    assert fake.received == [["SELECT", "3"], ["PING"]]


def test_a_connection_the_server_closed_is_replaced_once():
    fake = FakeRedis({"PING": [b"+PONG\r\n", b"+PONG\r\n"]})
    fake.close_after_each = True

    async def scenario(client):
        first = await client.execute("PING")
        await asyncio.sleep(0.05)  # the server has closed the idle connection
        return first, await client.execute("PING")

    assert run_against(fake, scenario) == ("PONG", "PONG")
    assert fake.connections == 2


def test_no_reply_is_a_timeout_and_an_unreachable_server_a_connection_error():
    class Silent(FakeRedis):
        async def handle(self, reader, writer):
            await asyncio.sleep(5)

    with pytest.raises(RespTimeout):
        run_against(Silent({}), lambda client: client.execute("PING"))

    async def unreachable():
        client = RespClient("redis://127.0.0.1:1/0", max_in_flight=1, connect_timeout=1, command_timeout=1)
        await client.execute("PING")

    with pytest.raises(RespConnectionError):
        asyncio.run(unreachable())


def test_concurrent_commands_share_one_connection_and_at_most_max_in_flight_are_outstanding():
    fake = FakeRedis({"PING": [b"+PONG\r\n"] * 20})

    async def scenario(client):
        return await asyncio.gather(*[client.execute("PING") for _ in range(20)])

    assert run_against(fake, scenario) == ["PONG"] * 20
    assert fake.connections == 1


class Batching(FakeRedis):
    """Reads `batch` commands before it answers any: a client that waits for each reply before
    sending the next command gets no answer at all."""

    def __init__(self, batch: int, delay_first: float = 0):
        super().__init__({})
        self.batch, self.delay_first = batch, delay_first

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                commands = [await _read_command(reader) for _ in range(self.batch)]
                self.received.append(commands)
                if len(self.received) == 2:  # the first batch after the warm-up
                    await asyncio.sleep(self.delay_first)
                writer.write(b"".join(b"$%d\r\n%s\r\n" % (len(c[1]), c[1].encode()) for c in commands))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def test_concurrent_commands_are_pipelined_and_each_caller_gets_its_own_reply():
    fake = Batching(2)

    async def scenario(client):
        return await asyncio.gather(client.execute("ECHO", "a"), client.execute("ECHO", "b"))

    assert run_against(fake, scenario) == ["a", "b"]
    assert fake.connections == 1


def test_no_more_than_max_in_flight_commands_are_sent_at_once():
    fake = Batching(3)  # answers only once it holds 3 commands; the client may have 2 outstanding

    async def scenario(client):
        return await asyncio.gather(*[client.execute("ECHO", x) for x in "abc"], return_exceptions=True)

    assert all(isinstance(reply, RespTimeout) for reply in run_against(fake, scenario))


def test_a_cancelled_caller_leaves_the_connection_in_step():
    fake = Batching(1, delay_first=0.2)

    async def scenario(client):
        await client.execute("ECHO", "warm-up")  # the connection is open
        first = asyncio.ensure_future(client.execute("ECHO", "first"))
        await asyncio.sleep(0.05)  # written; its reply comes 0.2 s later, after the caller gave up
        first.cancel()
        second = await client.execute("ECHO", "second")
        third = await client.execute("ECHO", "third")
        return second, third

    assert run_against(fake, scenario) == ("second", "third")
    assert fake.connections == 1
