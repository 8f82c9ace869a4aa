"""`cronium agent start|stop|status`: the local agent that `cronium run` hands jobs to (docs/agent.md)."""
from __future__ import annotations

import json
import time

import click
from cronium.core.errors import AgentRefused, AgentUnavailable, CroniumError

from .options import json_option


def _where(app):
    """(state dir, fingerprint, socket) of the agent for this command's configuration."""
    from cronium.core.agent import protocol
    from cronium.core.config import state_dir

    state = state_dir()
    fingerprint = protocol.fingerprint(app.config)
    return state, fingerprint, protocol.socket_path(state, fingerprint)


def _sockets(app, every: bool):
    from cronium.core.agent import protocol

    state, _, path = _where(app)
    if not every:
        return [path]
    return sorted(protocol.agent_dir(state).glob("agent-*.sock"))


@click.group()
def agent():
    """The local agent: a long-lived process of this user that keeps engine and Redis connections,
    plugins and warm pools, and runs the jobs of `cronium run` (one agent per configuration)."""


@agent.command()
@click.option("--foreground", is_flag=True,
              help="Serve in this process until stopped or idle (for systemd and other supervisors).")
@click.pass_obj
def start(app, foreground):
    """Start the agent for this configuration in the background (nothing happens when it runs)."""
    from cronium.core.agent import launch

    state, fingerprint, path = _where(app)
    if foreground:
        import logging

        from cronium.core.agent.server import serve

        logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(process)d %(levelname)s %(message)s")
        serve(app.config, state=state, fingerprint=fingerprint,
              ready=lambda server: click.echo(f"agent {server.status()['pid']} serving on {path}", err=True))
        return
    pid = launch.start_agent(state=state, fingerprint=fingerprint, config_file=app.config_file,
                             overrides=app.overrides, wait=app.config["agent.start_timeout"])
    click.echo(f"agent started (pid {pid}) on {path}" if pid else f"an agent already runs on {path}")


@agent.command()
@click.option("--all", "every", is_flag=True, help="Stop every agent of this user (all configurations).")
@click.pass_obj
def stop(app, every):
    """Stop the agent: running jobs are cancelled and cleaned up first."""
    from cronium.core.agent import client

    stopped = 0
    for path in _sockets(app, every):
        try:
            pid = client.query(path, "stop", timeout=30).get("pid")
        except AgentUnavailable:
            continue
        except AgentRefused as exc:
            raise CroniumError(str(exc)) from None
        _wait_until_gone(pid)
        click.echo(f"agent {pid} on {path} stopped")
        stopped += 1
    if not stopped:
        click.echo("no agent runs" + ("" if every else " for this configuration"))


def _wait_until_gone(pid: int, wait: float = 300.0) -> None:
    """Until the agent has cancelled its jobs, waited for their cleanup and exited."""
    from cronium.core.owners import pid_alive

    deadline = time.monotonic() + wait
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise CroniumError(f"the agent (pid {pid}) did not exit within {wait:g}s",
                               hint=f"see its log next to its socket; `kill {pid}` ends it")
        time.sleep(0.05)


@agent.command()
@json_option()
@click.option("--all", "every", is_flag=True, help="Every agent of this user (all configurations).")
@click.pass_obj
def status(app, as_json, every):
    """Pid, uptime, socket, jobs running and idle timeout of the agent; exit 1 when none runs."""
    from cronium.core.agent import client

    found = []
    for path in _sockets(app, every):
        try:
            found.append({k: v for k, v in client.query(path, "status").items() if k != "t"})
        except AgentUnavailable:
            continue
    if as_json:
        click.echo(json.dumps(found if every else (found[0] if found else {"running": False}), indent=2))
    for info in [] if as_json else found:
        click.echo(f"pid {info['pid']}  uptime {info['uptime']:.0f}s  jobs {info['jobs']}  "
                   f"idle timeout {info['idle_timeout']:g}s\n  socket {info['socket']}")
    if not found:
        if not as_json:
            click.echo("no agent runs" + ("" if every else " for this configuration"))
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(agent)
