"""The agent process: one Runtime (warm pools, engine and Redis connections, loaded plugins) that
runs jobs for `cronium run` clients over a unix socket.

- The socket lives in `<state dir>/agent/` (0700), is created 0600, and every connection's peer
  uid is read from the kernel (SO_PEERCRED): a peer of another uid gets a `refused` message and
  is closed before it can send anything the agent reads.
- Each connection is served on its own thread; jobs run concurrently through one `Orchestrator`.
- A job's output reaches its client through a log sink this module registers with the plugin
  manager (the `log_sinks` hook, like any plugin): stdout and stderr stay apart.
- A client that sends `cancel`, or goes away before its result, cancels its own job only (a
  `--detach` run goes on). The result is sent before the cleanup: clients return there, and the
  agent finishes every cleanup itself (on stop too: it waits for them before it exits).
- With no job client for `agent.idle_timeout` seconds (`status` queries do not count), or on
  `stop` / SIGTERM, the agent cancels what still runs, waits for the cleanups, closes the Runtime
  (draining its pools) and removes the socket.
- The agent is the owner of the jobs' resources (its owner id, its heartbeat): if it dies, the
  reaper of the next cronium process (or `cronium gc`) removes what its jobs left.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import CroniumError, UsageError
from ..plugins import hookimpl
from . import protocol

log = logging.getLogger("cronium.agent")


class ClientOutput:
    """A log sink that forwards a job's output, batch by batch, to its client."""

    name = "agent-client"

    def __init__(self, session: "Session"):
        self.session = session

    def write(self, batches) -> None:
        for b in batches:
            self.session.send({"t": "out", "s": b.stream, "d": protocol.b64(b.raw())})

    def close(self, ok: bool) -> None:
        pass


class ClientSinks:
    """The agent's own plugin: the `ClientOutput` sink of an execution that has a client."""

    def __init__(self, server: "AgentServer"):
        self.server = server

    @hookimpl
    def log_sinks(self, execution, runtime):
        session = self.server.sessions.get(execution.execution_id)
        return ClientOutput(session) if session is not None and session.console else None


class Session:
    """One client connection: sends are serialised (phases, the log pump and the result come from
    different threads); a client that went away is not an error of the job."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.lock = threading.Lock()
        self.gone = False
        self.console = True
        #: The job's result went out: the client may return; its cleanup still runs here.
        self.result_sent = False

    def send(self, message: dict[str, Any]) -> None:
        with self.lock:
            if self.gone:
                return
            try:
                self.conn.sendall(protocol.encode(message))
            except OSError:
                self.gone = True


class AgentServer:
    def __init__(self, config, *, state: Path, fingerprint: str):
        from ..lifecycle import Orchestrator
        from ..runtime import Runtime

        self.config = config
        self.fingerprint = fingerprint
        self.path = protocol.socket_path(state, fingerprint)
        self.idle_timeout = float(config["agent.idle_timeout"])
        self.runtime = Runtime(config, warm_pool=True)
        self.runtime.pm.register(ClientSinks(self), name="agent-client-output")
        self.orchestrator = Orchestrator(self.runtime)
        self.sessions: dict[str, Session] = {}
        self.cancels: dict[str, Any] = {}
        self.clients = 0
        #: Clients that asked for a job and are not done: only they keep the agent from idling.
        self.runs = 0
        self.started_at = time.time()
        self.last_seen = time.monotonic()
        self.stopping = threading.Event()
        #: Set once `_warm_up` is over: jobs start after it (never racing the runtime's start).
        self.warmed = threading.Event()
        self._warm: threading.Thread | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    # --- life ------------------------------------------------------------------------------
    def bind(self) -> None:
        """Create the socket (0600 in a 0700 folder); refuse to replace one an agent answers on."""
        import fcntl

        protocol.private_folder(self.path.parent)
        # Held for the agent's life: a second agent of this configuration stops here.
        self._lock_fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CroniumError(f"an agent already runs on {self.path}", hint="`cronium agent status`") from None
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # left by an agent that died
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        listener.settimeout(1.0)
        self._listener = listener

    def serve(self) -> None:
        """Accept clients until stopped or idle; then shut down. Warming up runs beside the first
        client (its hello goes out at once; its job waits for `warmed`)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: self.stopping.set())
        self._warm = threading.Thread(target=self._warm_up, name="cronium-agent-warm-up", daemon=True)
        self._warm.start()
        log.info("agent %s serving on %s", os.getpid(), self.path)
        try:
            while not self.stopping.is_set() and not self._idle():
                try:
                    conn, _ = self._listener.accept()
                except socket.timeout:
                    continue
                thread = threading.Thread(target=self._serve_client, args=(conn,), daemon=True,
                                          name="cronium-agent-client")
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                thread.start()
        finally:
            self.shutdown()

    def _warm_up(self) -> None:
        """Connections, the owner heartbeat, the background reaper, plugins' startup (pools), the
        cancel watcher; a failure is logged (a job then reports it itself)."""
        from .jobs import ensure_cancel_watcher

        try:
            self.runtime.connect()
            self.runtime.start("agent")
            ensure_cancel_watcher(self)
        except CroniumError as exc:
            log.warning("agent start-up: %s", exc)
        finally:
            self.warmed.set()

    def _idle(self) -> bool:
        with self._lock:
            return (self.idle_timeout > 0 and self.runs == 0
                    and time.monotonic() - self.last_seen > self.idle_timeout)

    def shutdown(self) -> None:
        """Stop accepting, cancel the jobs still running, wait for their cleanup, close."""
        self.stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        for cancellation in list(self.cancels.values()):
            cancellation.cancel("the agent is stopping")
        for thread in self._threads + ([self._warm] if self._warm is not None else []):
            thread.join()
        self.orchestrator.close()
        self.runtime.close()

    # --- clients ---------------------------------------------------------------------------
    def _serve_client(self, conn: socket.socket) -> None:
        session, request = Session(conn), None
        with self._lock:
            self.clients += 1
        try:
            if protocol.peer_uid(conn) != os.geteuid():
                session.send({"t": "refused", "message": "this cronium agent belongs to another user"})
                return
            session.send({"t": "hello", "pid": os.getpid(), "protocol": protocol.PROTOCOL})
            reader = conn.makefile("rb")
            conn.settimeout(30)  # a client that never asks is not kept
            request = next(protocol.messages(reader), None)
            conn.settimeout(None)
            if isinstance(request, dict) and request.get("op") == "run":
                with self._lock:
                    self.runs += 1
                    self.last_seen = time.monotonic()
            if request is not None:
                self._answer(session, request, reader)
        except (OSError, ValueError):
            log.debug("client connection failed", exc_info=True)
        except Exception as exc:  # a bug here must not look like a dead agent to the client
            log.exception("serving a client failed")
            session.send({"t": "error", "message": f"the agent failed: {type(exc).__name__}: {exc}", "exit": 125})
        finally:
            with self._lock:
                self.clients -= 1
                if isinstance(request, dict) and request.get("op") == "run":  # `status` is no use
                    self.runs -= 1
                    self.last_seen = time.monotonic()
            conn.close()

    def _answer(self, session: Session, request: dict[str, Any], reader) -> None:
        op = request.get("op")
        if op == "status":
            session.send({"t": "status", **self.status()})
        elif op == "stop":
            session.send({"t": "ok", "pid": os.getpid()})
            self.stopping.set()
        elif op == "run":
            if request.get("fingerprint") != self.fingerprint:
                session.send({"t": "refused", "message": "this agent runs with another configuration"})
                return
            from .jobs import run_for_client

            run_for_client(self, session, request, reader)
        else:
            session.send({"t": "error", "message": f"unknown request {op!r}", "exit": UsageError.exit_code})

    def status(self) -> dict[str, Any]:
        return {"running": True, "pid": os.getpid(), "uptime": round(time.time() - self.started_at, 1),
                "socket": str(self.path), "jobs": len(self.cancels), "cleaning": self._cleaning(),
                "clients": max(0, self.clients - 1), "idle_timeout": self.idle_timeout,
                "owner": self.runtime.owner, "fingerprint": self.fingerprint}

    def _cleaning(self) -> int:
        """Jobs whose result went out and whose cleanup still runs (they count in `jobs` too)."""
        with self._lock:
            return sum(1 for e in self.cancels if (s := self.sessions.get(e)) is not None and s.result_sent)


def serve(config, *, state: Path, fingerprint: str, ready=None) -> None:
    """Run an agent in this process until it stops (`cronium agent start --foreground`, or the
    detached child `cronium run` starts). `ready()` is called once the socket accepts clients."""
    server = AgentServer(config, state=state, fingerprint=fingerprint)
    server.bind()
    if ready is not None:
        ready(server)
    server.serve()
