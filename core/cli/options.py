"""Options that several commands share, as decorators, and the parser of `--input`.

Each decorator adds one option with the same flag, destination and type wherever it is used;
where the help text depends on the command, the command passes its own.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from cronium.core.errors import UsageError
from cronium.core.terminal import escape_text, should_escape


def json_option(help: str = "Print JSON."):
    """`--json` (parameter `as_json`): print JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def dry_run_option(help: str):
    """`--dry-run` (parameter `dry_run`): report, change nothing."""
    return click.option("--dry-run", is_flag=True, help=help)


def quiet_option(help: str):
    """`--quiet`/`-q` (parameter `quiet`)."""
    return click.option("--quiet", "-q", is_flag=True, help=help)


# --- showing job output (run, logs, deployments show) -------------------------------------------

def raw_option(func):
    """`--raw` (parameter `raw`): control characters in job output go out as they are, also on a terminal."""
    return click.option("--raw", is_flag=True,
                        help="Show control characters (escape sequences) as they are, even on a terminal. "
                             "Default: shown escaped on a terminal, exact bytes into a pipe or a file "
                             "(config logs.terminal_escape).")(func)


def escape_mode(app, raw: bool) -> str:
    """The `logs.terminal_escape` mode this command uses: `never` with --raw. Call it before the
    command's runtime exists, so that the runtime's terminal sink follows --raw as well."""
    if raw:
        app.flags["logs.terminal_escape"] = "never"
        app.flag_sources["logs.terminal_escape"] = "flag --raw"
        return "never"
    return app.config["logs.terminal_escape"]


def echo_shown(text: str, mode: str, *, err: bool = False, nl: bool = True) -> None:
    """`click.echo` for text that a job or a deployment file controls: its control characters are
    escaped (`cronium.core.terminal.escape_text`) when `mode` says so for that stream."""
    stream = sys.stderr if err else sys.stdout
    click.echo(escape_text(text) if should_escape(stream, mode) else text, err=err, nl=nl)


# --- input and waiting (run, submit, cancel) ---------------------------------------------------

def input_option(help: str):
    """`--input JSON|@FILE` (parameter `input_`); read the value with `parse_input`."""
    return click.option("--input", "input_", metavar="JSON|@FILE", help=help)


def parse_input(value: str | None) -> Any:
    """--input: JSON text, or @FILE with JSON in it."""
    if value is None:
        return None
    source = "--input"
    if value.startswith("@"):
        path = Path(value[1:])
        source = f"--input file {path}"
        try:
            value = path.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}",
                         hint="quote JSON for the shell, e.g. --input '{\"name\": \"x\"}'") from None


def wait_option(help: str):
    """`--wait` (parameter `wait`): wait until the execution has ended."""
    return click.option("--wait", is_flag=True, help=help)


def wait_timeout_option(default: float | None = None):
    """`--timeout SECONDS` (parameter `wait_timeout`) that goes with `--wait`; `default` is shown."""
    shown = {} if default is None else {"default": default, "show_default": True}
    return click.option("--timeout", "wait_timeout", type=float, metavar="SECONDS",
                        help="With --wait: give up after this long.", **shown)


# --- long-lived processes (worker, scheduler, serve) ------------------------------------------

log_level_option = click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
                                default="info", show_default=True, help="What the process logs to stderr.")
metrics_port_option = click.option("--metrics-port", type=int, metavar="PORT",
                                   help="Serve Prometheus metrics on this port (default: metrics.port; 0 = off).")
metrics_host_option = click.option("--metrics-host", metavar="HOST",
                                   help="Address for the metrics endpoint (default: metrics.host, 127.0.0.1).")


def process_options(func):
    """`--metrics-port`, `--metrics-host` and `--log-level`, which every long-lived process takes."""
    for option in reversed((metrics_port_option, metrics_host_option, log_level_option)):
        func = option(func)
    return func


concurrency_option = click.option("--concurrency", "-c", type=click.IntRange(1, 256), metavar="N",
                                  help="Executions this worker runs at once (default: worker.concurrency).")


# --- variables ----------------------------------------------------------------------------------

namespace_option = click.option("--namespace", "-n", default=None, help="Namespace (default: config `namespace`).")


# --- time windows (ps, logs) ---------------------------------------------------------------------

def parse_duration(text: str) -> float | None:
    """A duration (`cronium.core.values.duration_seconds`) -> seconds; None when `text` is not one."""
    from cronium.core.values import duration_seconds

    try:
        return duration_seconds(text)
    except ValueError:
        return None


def parse_since(value: str | None, *, now: float | None = None, option: str = "--since") -> float | None:
    """`--since`: a duration back from now (`1h`, `30m`, `2d`) or a time (`2026-12-03T08:00`,
    `2026-12-03 08:00:00`, a date; local time unless it carries `Z` or an offset) -> unix seconds."""
    import time
    from datetime import datetime

    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is not None:
        return (time.time() if now is None else now) - seconds
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise UsageError(f"{option} {value!r} is neither a duration nor a time",
                         hint=f"use a duration such as {option} 1h, 30m, 2d or 1h30m, or a time such as "
                              f"{option} 2026-12-03T08:00 (local time; add Z for UTC)") from None
    return moment.timestamp()


def since_option(help: str):
    """`--since DURATION|TIME` (parameter `since`); read the value with `parse_since`."""
    return click.option("--since", "since", metavar="DURATION|TIME", help=help)
