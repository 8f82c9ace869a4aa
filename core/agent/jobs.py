"""One `run` request in the agent: the client's job through the agent's Orchestrator, its phases,
output and result sent back, its cancellation tied to the client (a `cancel` message, or the
client going away before the result unless the run is detached).

The `result` message goes out before the cleanup; a client usually returns there, and the agent
finishes the cleanup on its own — the job counts as running (`status` → `jobs`, and the agent does
not idle out) until its cleanup is done; on stop it is waited for."""
from __future__ import annotations

import logging
import threading
from typing import Any

from ..errors import CroniumError, UsageError
from . import protocol

log = logging.getLogger("cronium.agent")


def run_for_client(server, session, request: dict[str, Any], reader) -> None:
    from ..lifecycle import Cancellation
    from ..spec import validate

    try:
        spec = protocol.spec_from_wire(request["spec"])
        validate(spec, server.config)  # the client validated too; a job is never half-created
    except CroniumError as exc:
        session.send({"t": "error", "message": str(exc), "exit": exc.exit_code})
        return
    except (KeyError, TypeError, ValueError) as exc:
        session.send({"t": "error", "message": f"malformed run request: {exc}", "exit": UsageError.exit_code})
        return
    session.console = bool(request.get("console", True))
    detached = bool(request.get("detach"))
    cancellation = Cancellation()
    execution_id = spec.execution_id
    with server._lock:
        if execution_id in server.sessions:
            session.send({"t": "error", "message": f"{execution_id} already runs", "exit": UsageError.exit_code})
            return
        server.sessions[execution_id] = session
        server.cancels[execution_id] = cancellation
    threading.Thread(target=_listen, args=(reader, cancellation, detached, session), daemon=True,
                     name="cronium-agent-listen").start()
    server.warmed.wait()  # connections and the runtime's start (usually done before a client asks)
    ensure_cancel_watcher(server)

    def on_result(result) -> None:
        session.result_sent = True  # from here on the client may go: the cleanup is ours
        session.send({"t": "result", "result": result.as_dict(), "exit": result.cli_exit_code})

    try:
        result = server.orchestrator.run(
            spec, events=lambda phase, state: session.send({"t": "event", "phase": phase, "state": state}),
            cancel=cancellation, on_result=on_result)
        final = {"t": "done", "result": result.as_dict(), "exit": result.cli_exit_code}
    except CroniumError as exc:  # before anything was created: store or engine down, bad spec
        final = {"t": "error", "message": str(exc), "exit": exc.exit_code}
    finally:  # the job no longer counts as running once its client hears it ended
        with server._lock:
            server.sessions.pop(execution_id, None)
            server.cancels.pop(execution_id, None)
    session.send(final)


def _listen(reader, cancellation, detached: bool, session) -> None:
    """Read the client's messages while its job runs: `cancel` cancels it; the client closing
    its end (Ctrl-C killed it, its terminal went away) cancels it too unless it is detached or
    its result was already sent (it returned at the result: the cleanup goes on)."""
    try:
        for message in protocol.messages(reader):
            if message.get("op") == "cancel":
                cancellation.cancel(str(message.get("reason") or "cancelled by the client"))
    except (OSError, ValueError):
        pass
    if not detached and not session.result_sent:
        cancellation.cancel("the client went away")


def ensure_cancel_watcher(server) -> None:
    """One watcher for all of the agent's jobs: `cronium cancel EXECUTION` from any host."""
    if getattr(server, "_cancel_watcher", None) is not None:
        return
    from ..fleet.cancel import CancelWatcher

    with server._lock:
        if getattr(server, "_cancel_watcher", None) is None:
            try:
                server._cancel_watcher = CancelWatcher(server.runtime.store,
                                                       running=lambda: dict(server.cancels)).start()
            except CroniumError:
                log.debug("no cancel watcher (Redis down)", exc_info=True)
