"""`cronium inspect` and `cronium logs`: an execution's record and output, from Redis."""
from __future__ import annotations

import json
import sys

import click
from cronium.core.errors import NotFound
from cronium.core.model import ENDED_STATUSES

from .display import human_record
from cronium.core.terminal import SafeWriter, should_escape

from .options import echo_shown, escape_mode, json_option, raw_option


@click.command()
@click.argument("execution_id")
@json_option("Print the whole record as JSON.")
@raw_option
@click.pass_obj
def inspect(app, execution_id, as_json, raw):
    """Show the record of EXECUTION_ID: status, exit code, timings, output, the job spec (no secrets)."""
    mode = escape_mode(app, raw)
    rec = app.runtime().store.records.get(execution_id)
    echo_shown(json.dumps(rec, indent=2, ensure_ascii=False) if as_json else human_record(rec), mode)


@click.command()
@click.argument("execution_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the job ends.")
@click.option("--stream", type=click.Choice(["all", "stdout", "stderr"]), default="all", help="Which stream to print.")
@raw_option
@click.pass_obj
def logs(app, execution_id, follow, stream, raw):
    """Print the output of EXECUTION_ID (from another terminal while it runs, or after it ended).

    On a terminal, control characters are shown escaped (ESC as \\x1b) unless --raw; into a pipe
    or a file the exact bytes go out."""
    mode = escape_mode(app, raw)
    store = app.runtime().store
    if not store.logs.exists(execution_id) and not store.records.exists(execution_id):
        raise NotFound(f"no execution '{execution_id}'", hint="list executions with `cronium jobs list`")
    out = SafeWriter(sys.stdout.buffer, should_escape(sys.stdout.buffer, mode))
    err = SafeWriter(sys.stderr.buffer, should_escape(sys.stderr.buffer, mode))
    try:
        _print_log(store, execution_id, follow, stream, out, err)
    finally:
        out.close()
        err.close()


def _print_log(store, execution_id: str, follow: bool, stream: str, out, err) -> None:
    last = "0-0"
    while True:
        entries = store.logs.read(execution_id, last, block_ms=1000 if follow else None)
        for entry_id, fields in entries:
            last = entry_id
            if b"eof" in fields:
                return
            which = fields[b"stream"].decode()
            if stream in ("all", which):
                (err if which == "stderr" else out).write(fields[b"data"])
        out.flush()
        err.flush()
        if not entries:
            if not follow:
                return
            if store.records.status(execution_id) in ENDED_STATUSES and not store.logs.exists(execution_id):
                return


def register(cli: click.Group) -> None:
    cli.add_command(inspect)
    cli.add_command(logs)
