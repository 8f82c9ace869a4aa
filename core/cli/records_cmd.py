"""`cronium inspect` and `cronium logs`: an execution's record and output, from Redis."""
from __future__ import annotations

import json
import sys

import click
from cronium.core.errors import NotFound, UsageError
from cronium.core.model import ENDED_STATUSES

from cronium.core.logs import log_file
from cronium.core.terminal import SafeWriter, should_escape

from .completion_cmd import complete_execution
from .display import human_record, render_format
from .log_lines import LineFormat, print_stream, show_file
from .options import echo_shown, escape_mode, json_option, parse_since, raw_option, since_option


@click.command()
@click.argument("execution_id", shell_complete=complete_execution)
@json_option("Print the whole record as JSON.")
@click.option("--format", "-f", "template", metavar="TEMPLATE",
              help="Print TEMPLATE with {{.field}} replaced by the record's field, e.g. '{{.status}} {{.exit_code}}', "
                   "'{{.timings.job}}', '{{json .output}}'.")
@raw_option
@click.pass_obj
def inspect(app, execution_id, as_json, template, raw):
    """Show the record of EXECUTION_ID: status, exit code, times, durations, output, the job spec
    (no secrets). `--json` prints the whole record; `--format` picks fields. On a terminal, control
    characters in the job's output are shown escaped unless --raw."""
    if as_json and template:
        raise UsageError("--json and --format do not go together", hint="use --format '{{json .}}' for JSON")
    mode = escape_mode(app, raw)
    rec = app.runtime(read_only=True).store.records.get(execution_id)
    if template:
        echo_shown(render_format(template, rec), mode)
        return
    echo_shown(json.dumps(rec, indent=2, ensure_ascii=False) if as_json else human_record(rec), mode)


@click.command()
@click.argument("execution_id", shell_complete=complete_execution)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the job ends.")
@click.option("--stream", type=click.Choice(["all", "stdout", "stderr"]), default="all", help="Which stream to print.")
@click.option("--tail", "-n", type=click.IntRange(0), metavar="N", help="Only the last N lines (then follow with -f).")
@since_option("Only lines written since DURATION ago (10m, 1h) or since TIME (2026-12-03T08:00).")
@click.option("--timestamps", "-t", is_flag=True, help="Start each line with the time it was written (UTC).")
@json_option("One JSON object per line: time, stream, text.")
@raw_option
@click.pass_obj
def logs(app, execution_id, follow, stream, tail, since, timestamps, as_json, raw):
    """Print the output of EXECUTION_ID (from another terminal while it runs, or after it ended).

    Once the Redis stream has expired (logs.redis_ttl) the output comes from the log file under
    logs.dir, without times or streams; stderr says so. On a terminal, control characters are
    shown escaped (ESC as \\x1b) unless --raw; into a pipe or a file the exact bytes go out."""
    since_ts = parse_since(since)
    mode = escape_mode(app, raw)
    store = app.runtime(read_only=True).store
    out = SafeWriter(sys.stdout.buffer, should_escape(sys.stdout.buffer, mode))
    err = SafeWriter(sys.stderr.buffer, should_escape(sys.stderr.buffer, mode))
    fmt = LineFormat(out, err, timestamps=timestamps, as_json=as_json)
    try:
        if not store.logs.exists(execution_id) and _from_file(app, store, execution_id, fmt, tail, since, stream):
            return
        if tail is not None or since or timestamps or as_json:
            streams = {"stdout", "stderr"} if stream == "all" else {stream}
            print_stream(store, execution_id, fmt, tail=tail, since=since_ts, streams=streams, follow=follow)
            return
        _print_log(store, execution_id, follow, stream, out, err)
    finally:
        out.close()
        err.close()


def _from_file(app, store, execution_id: str, fmt, tail, since, stream) -> bool:
    """With no Redis stream: print the log file of an ended (or unknown) execution and say True;
    False for a job whose stream is not there yet."""
    status = store.records.status(execution_id)
    path = log_file(app.config, execution_id)
    if status is None and not path.is_file():
        raise NotFound(f"no execution '{execution_id}'", hint="list executions with `cronium ps -a`")
    if status is not None and status not in ENDED_STATUSES:
        return False
    why = "its Redis log stream has expired" if status is not None else "it has no record or log stream"
    show_file(path, execution_id, fmt, tail=tail, since=since, stream=stream, why=why)
    return True


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
