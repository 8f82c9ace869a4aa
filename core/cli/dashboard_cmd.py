"""`cronium dashboard`: the web dashboard on its own (`cronium serve` serves it too)."""
from __future__ import annotations

import signal
import threading

import click


def start_dashboard(app, *, host: str | None = None, port: int | None = None, store=None):
    """A started DashboardServer for `app`'s config (its store: `store`, or the read-only runtime's)."""
    from cronium.core.dashboard.server import DashboardServer

    return DashboardServer(app.config, host=host, port=port,
                           store=store if store is not None else lambda: app.runtime(read_only=True).store).start()


@click.command()
@click.option("--host", metavar="HOST",
              help="Address to listen on (default: dashboard.host, 127.0.0.1). Any address but loopback "
                   "needs a token (dashboard.admin_token); without one the command refuses to start.")
@click.option("--port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Port (default: dashboard.port; 0 = a free one).")
@click.pass_obj
def dashboard(app, host, port):
    """Serve the web dashboard until Ctrl-C (or SIGTERM): executions, their logs live, phase
    timelines; cancel and retry. Prints its URL. Access rules: docs/dashboard.md."""
    server = start_dashboard(app, host=host, port=port)
    click.echo(f"dashboard on {server.url} (Ctrl-C stops it)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        app.close_runtime()
    click.echo("dashboard stopped")


def register(cli: click.Group) -> None:
    cli.add_command(dashboard)
