"""`cronium run` through the local agent (docs/agent.md): the client half.

The job is validated here first (bad input: exit 2, nothing sent), then handed to the agent of
this user and configuration — started in the background when none answers. Phases, output and
the result come back over the socket and are shown exactly as the one-shot path shows them; Ctrl-C
asks the agent to cancel this job only. The client returns at the result: the agent removes the
job's containers and network after it, on its own (`--wait-cleanup` / `agent.wait_cleanup` waits
for that too). Imports stay lean: no docker, redis, pluggy, jwt, sanic.
"""
from __future__ import annotations

import json
import signal
import sys

import click
from cronium.core.errors import AgentRefused, AgentUnavailable
from cronium.core.model import JobResult

from .options import echo_shown
from .run_display import StatusLine, summary_text


def agent_wanted(app, no_agent: bool) -> bool:
    return not no_agent and bool(app.config["agent.enabled"])


def run_via_agent(app, spec, *, mode: str, as_json: bool, quiet: bool, detached: bool,
                  wait_cleanup: bool = False) -> int | None:
    """Run `spec` in the agent; its exit code, or None when no agent could be had (the caller then
    runs the job in this process: nothing was created yet)."""
    from cronium.core.agent import client, protocol

    fingerprint = protocol.fingerprint(app.config)
    try:
        conn = _connect_or_start(app, fingerprint)
    except AgentUnavailable as exc:
        click.echo(f"warning: {exc.message}; running the job in this process (--no-agent)", err=True)
        return None
    request = {"spec": protocol.spec_to_wire(spec), "fingerprint": fingerprint,
               "console": not as_json and not detached, "detach": detached}
    try:
        remote = client.RemoteRun(conn, request)
        if detached:
            return _detach(remote)
        return _follow(remote, mode=mode, as_json=as_json, quiet=quiet,
                       wait_cleanup=wait_cleanup or bool(app.config["agent.wait_cleanup"]))
    except AgentRefused as exc:  # it runs with another configuration (a race with a config edit)
        click.echo(f"warning: {exc.message}; running the job in this process (--no-agent)", err=True)
        return None
    finally:
        conn.close()


def _connect_or_start(app, fingerprint: str):
    from cronium.core.agent import client, protocol
    from cronium.core.config import state_dir

    state = state_dir()
    path = protocol.socket_path(state, fingerprint)
    try:
        return client.Connection(path)
    except AgentUnavailable:
        from cronium.core.agent import launch  # subprocess & co.: only when an agent must be started

        launch.start_agent(state=state, fingerprint=fingerprint, config_file=app.config_file,
                           overrides=app.overrides, wait=app.config["agent.start_timeout"])
        return client.Connection(path)


def _detach(remote) -> int:
    """`--detach`: once the agent reports the first phase (the record exists), print the id."""
    def started(message):
        raise _Started()

    try:
        remote.follow(started)
    except _Started:
        click.echo(remote.execution_id)
        return 0
    return 0  # the job ended before any phase began (follow raised or returned its result)


class _Started(Exception):
    pass


def _follow(remote, *, mode: str, as_json: bool, quiet: bool, wait_cleanup: bool) -> int:
    from cronium.core.agent.protocol import unb64
    from cronium.core.color import color_enabled
    from cronium.core.console import TerminalSink

    status = StatusLine(sys.stderr.isatty() and not quiet and not as_json, color=color_enabled(sys.stderr))
    sink = TerminalSink(escape=mode)
    _cancel_on_signals(remote)

    def on_message(message):
        kind = message.get("t")
        if kind == "event":
            status(message["phase"], message["state"])
        elif kind == "out" and not as_json:  # as on the one-shot path: --json shows no job output
            sink.write_chunk(message["s"], unb64(message["d"])).flush()
        elif kind == "result" and not as_json and not quiet:
            echo_shown(summary_text(result_of(message["result"])), mode, err=True)

    data, code = remote.follow(on_message, until_result=not wait_cleanup)
    result = result_of(data)
    if not as_json:
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_shown(json.dumps(result.as_dict(), ensure_ascii=False), mode)
    return code


def _cancel_on_signals(remote) -> None:
    """SIGINT/SIGTERM ask the agent to cancel this job (cleanup still runs there); a second signal
    is ignored until it has ended."""
    def handler(signum, frame):
        remote.cancel(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def result_of(data: dict) -> JobResult:
    """A JobResult from its `as_dict()` form."""
    fields = {k: v for k, v in data.items() if k != "duration"}
    fields["warnings"] = tuple(fields.get("warnings") or ())
    return JobResult(**fields)
