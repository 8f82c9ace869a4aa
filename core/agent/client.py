"""The client side: talk to the agent of this user and configuration over its socket.

Lean on purpose (the standard library and `protocol`): `cronium run` on the agent path never
imports docker, redis, pluggy, jwt or sanic (a unit test checks it).
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import AgentLost, AgentRefused, AgentUnavailable, CroniumError
from . import protocol

#: What a client says to the user when the agent ended under its job.
LOST_HINT = ("its job's containers and network are removed by the reaper (the next cronium command, or "
             "`cronium gc` now); see the agent's log in the state dir (agent/*.log)")


class Connection:
    """One connection to an agent: the `hello` already read (`pid`)."""

    def __init__(self, path: Path, timeout: float | None = None):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            self.sock.close()
            raise AgentUnavailable(f"no cronium agent answers on {path}") from None
        except PermissionError:
            self.sock.close()
            raise AgentRefused(f"permission denied on the agent socket {path}: it belongs to another user",
                               hint="use your own state dir (CRONIUM_STATE_DIR), or run with --no-agent") from None
        except OSError as exc:
            self.sock.close()
            raise AgentUnavailable(f"cannot connect to the agent on {path}: {exc.strerror}") from None
        self.reader = self.sock.makefile("rb")
        self._messages = protocol.messages(self.reader)
        hello = self.next()
        if hello is None or hello.get("t") == "refused":
            self.close()
            why = (hello or {}).get("message", "it closed the connection")
            raise AgentRefused(f"the cronium agent on {path} refused this client: {why}",
                               hint="each user runs their own agent; use your own state dir (CRONIUM_STATE_DIR), "
                                    "or run with --no-agent")
        self.pid = hello.get("pid")
        self.sock.settimeout(None)

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(protocol.encode(message))

    def next(self) -> dict[str, Any] | None:
        """The next message, or None when the agent closed the connection (or died)."""
        try:
            return next(self._messages, None)
        except (OSError, ValueError):
            return None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (message := self.next()) is not None:
            yield message

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


def query(path: Path, op: str, timeout: float = 10.0) -> dict[str, Any]:
    """Ask the agent a one-answer question (`status`, `stop`)."""
    conn = Connection(path, timeout)
    try:
        conn.sock.settimeout(timeout)
        conn.send({"op": op})
        answer = conn.next()
        if answer is None:
            raise AgentUnavailable(f"the agent on {path} closed the connection without an answer")
        return answer
    finally:
        conn.close()


def answers(path: Path) -> bool:
    try:
        Connection(path, timeout=5.0).close()
        return True
    except (AgentUnavailable, AgentRefused):
        return False


class RemoteRun:
    """A `run` request on a connection: `messages()` yields the agent's events, output and result;
    `cancel()` (from a signal handler) asks the agent to cancel this job only."""

    def __init__(self, conn: Connection, request: dict[str, Any]):
        self.conn = conn
        self.execution_id = request["spec"]["execution_id"]
        self.cancelled = False
        conn.send({"op": "run", **request})

    def cancel(self, reason: str) -> None:
        if self.cancelled:
            return  # a second Ctrl-C waits for the cleanup, as on the one-shot path
        self.cancelled = True
        try:
            self.conn.send({"op": "cancel", "reason": reason})
        except OSError:
            pass

    def follow(self, on_message: Callable[[dict[str, Any]], None], *,
               until_result: bool = False) -> tuple[dict[str, Any] | None, int]:
        """Hand every message to `on_message` until `done` — or, with `until_result`, until the
        `result` (sent before the cleanup, which the agent then finishes on its own): (the result,
        the exit code). An `error` becomes its CroniumError; the connection ending first is
        `AgentLost`."""
        for message in self.conn:
            kind = message.get("t")
            if kind == "done" or (kind == "result" and until_result):
                if kind == "result":
                    on_message(message)
                return message["result"], int(message["exit"])
            if kind == "refused":  # before anything was created
                raise AgentRefused(message.get("message", "the agent refused the job"))
            if kind == "error":
                error = CroniumError(message.get("message", "the agent could not run the job"))
                error.exit_code = int(message.get("exit", 1))
                raise error
            on_message(message)
        raise AgentLost(f"the cronium agent (pid {self.conn.pid}) ended while it ran {self.execution_id}",
                        hint=LOST_HINT)
