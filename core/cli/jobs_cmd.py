"""Executions from the command line: `submit` (enqueue a deployed job), `cancel`, `jobs list|show`."""
from __future__ import annotations

import json
import sys
import time

import click
from cronium.core.errors import CroniumError
from cronium.core.model import FINAL_STATUSES, Status

from .completion_cmd import complete_execution, complete_execution_or_job, complete_job
from .display import describe_job, human_record, job_lines, record_summary, when
from .options import (
    echo_shown,
    escape_mode,
    input_option,
    json_option,
    parse_input,
    raw_option,
    wait_option,
    wait_timeout_option,
)

#: Statuses an execution can have, for --status.
STATUSES = tuple(s.value for s in Status)


def _wait_final(store, execution_id: str, timeout: float | None) -> dict:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        rec = store.records.get(execution_id)
        if rec.get("status") in FINAL_STATUSES:
            return rec
        if deadline is not None and time.monotonic() > deadline:
            raise CroniumError(f"{execution_id} is still {rec.get('status')} after {timeout:g}s")
        time.sleep(0.2)


@click.command()
@click.argument("job", shell_complete=complete_job)
@input_option("The execution's input (default: the job's input).")
@wait_option("Wait until the execution ends; exit with its status like `cronium run`.")
@wait_timeout_option()
@json_option("Print JSON (the enqueue result, or with --wait the record).")
@click.pass_obj
def submit(app, job, input_, wait, wait_timeout, as_json):
    """Enqueue one execution of the deployed JOB; prints its execution id.

    A worker (`cronium worker` or `cronium serve`) runs it. The job's concurrency policy applies:
    with `forbid`, submitting while a run is active fails (exit 1); with `replace`, the active run
    is cancelled.
    """
    import getpass
    import socket

    from cronium.core.fleet.queue import Queue
    from cronium.core.model import EXIT_CODES

    store = app.runtime().store
    value = parse_input(input_) if input_ is not None else None
    result = Queue(store, app.config).submit(job, input=value, use_job_input=input_ is None,
                                             submitted_by=f"{getpass.getuser()}@{socket.gethostname()}")
    for other in result.replaced:
        click.echo(f"cancelling {other} (concurrency policy replace)", err=True)
    if not wait:
        if as_json:
            click.echo(json.dumps({"execution_id": result.execution_id, "job": job, "replaced": result.replaced}))
        else:
            click.echo(result.execution_id)
        return
    click.echo(f"{result.execution_id} queued; waiting", err=True)
    rec = _wait_final(store, result.execution_id, wait_timeout)
    mode = app.config["logs.terminal_escape"]  # the record holds the job's output: escaped on a terminal
    if as_json:
        echo_shown(json.dumps(rec, indent=2, ensure_ascii=False), mode)
    else:
        echo_shown(record_summary(rec), mode, err=True)
    status = rec["status"]
    if status == "succeeded":
        sys.exit(0)
    if status == "failed":
        sys.exit(rec.get("exit_code") or 1)
    sys.exit(EXIT_CODES.get(status, 1))


@click.command()
@click.argument("execution_id", shell_complete=complete_execution)
@wait_option("Wait until the execution has ended.")
@wait_timeout_option(120.0)
@click.pass_obj
def cancel(app, execution_id, wait, wait_timeout):
    """Cancel EXECUTION_ID from any host: a queued execution is marked cancelled and never runs; a
    running one is stopped by the worker (or `cronium run`) that owns it, and cleaned up. Exit 1 if
    it already ended."""
    import socket

    from cronium.core.errors import NotFound
    from cronium.core.fleet.queue import Queue

    store = app.runtime().store
    outcome = Queue(store, app.config).cancel(execution_id, f"cancelled with `cronium cancel` on {socket.gethostname()}")
    if outcome == "missing":
        raise NotFound(f"no execution '{execution_id}'", hint="list executions with `cronium jobs list`")
    if outcome.startswith("final:"):
        raise CroniumError(f"{execution_id} already ended ({outcome.split(':', 1)[1]}): nothing to cancel")
    if outcome == "cancelled":
        click.echo(f"{execution_id} cancelled (it was still queued)")
        return
    click.echo(f"{execution_id}: cancel requested; the worker (or `cronium run`) running it stops it")
    if wait:
        rec = _wait_final(store, execution_id, wait_timeout)
        click.echo(f"{execution_id} {rec['status']}")


@click.group()
def jobs():
    """Executions and their statuses (queued, running, finished), with their deployed jobs."""


@jobs.command("list")
@click.option("--job", "job_name", metavar="NAME", help="Only executions of this job.")
@click.option("--status", type=click.Choice(STATUSES), multiple=True, help="Only these statuses (repeatable).")
@click.option("--limit", "-n", type=click.IntRange(1, 10000), default=30, show_default=True,
              help="How many executions, newest first.")
@json_option("Print JSON records.")
@click.pass_obj
def list_jobs(app, job_name, status, limit, as_json):
    """Recent executions, newest first: id, job, status, trigger, attempt, times, host."""
    store = app.runtime().store
    want = set(status)
    scan = limit if not (job_name or want) else max(limit * 20, 1000)
    rows = [r for r in store.records.latest(scan)
            if (not job_name or r.get("job_id") == job_name) and (not want or r.get("status") in want)][:limit]
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.items() if k not in ("definition", "context")} for r in rows],
                              indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no executions")
        return
    click.echo(f"{'EXECUTION':22} {'JOB':20} {'STATUS':10} {'TRIGGER':9} {'TRY':>3}  {'CREATED':19}  {'DURATION':>8}  HOST")
    for r in rows:
        duration = "-"
        if r.get("finished_at") and r.get("started_at"):
            duration = f"{r['finished_at'] - r['started_at']:.1f}s"
        click.echo(f"{r.get('id', '?'):22} {r.get('job_id', '?')[:20]:20} {r.get('status', '?'):10} "
                   f"{r.get('trigger') or 'run':9} {r.get('attempt') or '1':>3}  {when(r.get('queued_at') or r.get('created_at')):19}  "
                   f"{duration:>8}  {r.get('host') or '-'}")


@jobs.command("show")
@click.argument("ident", metavar="EXECUTION|JOB", shell_complete=complete_execution_or_job)
@json_option()
@raw_option
@click.pass_obj
def show_job(app, ident, as_json, raw):
    """An execution's record with the deployment job it ran (an exec_… id), or a deployed job with
    its recent executions (a job name). On a terminal, control characters (from the job's output
    or the deployment file) are shown escaped unless --raw."""
    from cronium.core.deploy.definition import JobDefinition
    from cronium.core.deploy.registry import DeploymentRegistry

    mode = escape_mode(app, raw)

    def echo(text: str = "") -> None:
        echo_shown(text, mode)

    store = app.runtime().store
    registry = DeploymentRegistry(store)
    if ident.startswith("exec_"):
        rec = store.records.get(ident)
        definition = JobDefinition.from_json(json.dumps(rec["definition"])) if rec.get("definition") else None
        if as_json:
            echo(json.dumps({"execution": rec, "job": describe_job(definition) if definition else None},
                            indent=2, ensure_ascii=False))
            return
        shown = {k: v for k, v in rec.items() if k not in ("definition", "history", "metadata")}
        echo(human_record(shown))
        if rec.get("input") is not None:
            echo(f"{'input':12} {json.dumps(rec['input'], ensure_ascii=False)}")
        meta = rec.get("metadata") or {}
        if meta:
            echo(f"{'metadata':12} {json.dumps(meta, ensure_ascii=False)}")
        for h in rec.get("history") or []:
            echo(f"{'earlier':12} {h['status']} on {h['owner'] or '?'} ({h.get('error') or 'owner died'}), "
                 f"taken over {when(h['at'])}")
        if definition is not None:
            echo("")
            echo(f"deployment {definition.deployment} ({definition.source}), as enqueued:")
            for line in job_lines(definition):
                echo(line)
        return
    definition = registry.job(ident)
    recent = [r for r in store.records.latest(1000) if r.get("job_id") == ident][:10]
    if as_json:
        echo(json.dumps({"job": describe_job(definition),
                         "executions": [{k: r.get(k) for k in ("id", "status", "trigger", "attempt",
                                                                "created_at", "finished_at")} for r in recent]},
                        indent=2, ensure_ascii=False))
        return
    echo(f"deployment {definition.deployment} ({definition.source})")
    for line in job_lines(definition):
        echo(line)
    echo("")
    echo("recent executions:" if recent else "no executions yet")
    for r in recent:
        echo(f"  {r['id']}  {r.get('status', '?'):10} {r.get('trigger') or 'run':9} {when(r.get('created_at'))}")


def register(cli: click.Group) -> None:
    for command in (submit, cancel, jobs):
        cli.add_command(command)
