"""`cronium ps`: executions that are queued or running (with `-a`, finished ones too), newest first.

The query is `cronium.core.listing.select` (the dashboard's list uses it too): the `P executions`
index page by page from the newest entry, and the live set; never a SCAN of the keyspace.
"""
from __future__ import annotations

import json
import time

import click
from cronium.core.listing import select

from .completion_cmd import complete_job
from .display import ago, duration
from .jobs_cmd import STATUSES
from .options import json_option, parse_since, quiet_option, since_option


def _row(rec: dict, now: float) -> str:
    started, finished = rec.get("started_at"), rec.get("finished_at")
    took = duration((finished or now) - started) if started else "-"
    status = rec.get("status", "?")
    if rec.get("exit_code") is not None and status not in ("succeeded",):
        status += f" ({rec['exit_code']})"
    return (f"{rec.get('id', '?'):22} {(rec.get('job_id') or '?')[:24]:24} {(rec.get('namespace') or '-')[:12]:12} "
            f"{status:16} {ago(rec.get('created_at'), now):16} {took:>8}")


@click.command()
@click.option("--all", "-a", "show_all", is_flag=True,
              help="Also show ended executions (default: queued and running).")
@since_option("Only executions created since DURATION ago (30m, 1h, 2d) or since TIME (2026-12-03T08:00).")
@click.option("--namespace", "-n", metavar="NAME", help="Only executions in this namespace.")
@click.option("--job", metavar="NAME", shell_complete=complete_job, help="Only executions of this job (deployed job name, or adhoc-SCRIPT).")
@click.option("--status", type=click.Choice(STATUSES), multiple=True,
              help="Only these statuses (repeatable; looks at ended executions too, like -a).")
@click.option("--limit", "-l", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="Show at most this many, newest first.")
@quiet_option("Only execution ids, one a line.")
@json_option("Print a JSON list of the executions' summaries.")
@click.pass_obj
def ps(app, show_all, since, namespace, job, status, limit, quiet, as_json):
    """List executions: queued and running ones, newest first (-a: ended ones too).

    \b
    Examples:
      cronium ps                        # what runs now
      cronium ps -a --since 1h          # everything of the last hour
      cronium ps -a --job nightly --status failed -q   # ids of its failures
    """
    since_ts = parse_since(since)
    store = app.runtime(read_only=True).store
    rows = select(store, show_all=show_all, since=since_ts, namespace=namespace, job=job, statuses=status,
                  limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif quiet:
        for rec in rows:
            click.echo(rec["id"])
    else:
        now = time.time()
        click.echo(f"{'EXECUTION':22} {'JOB':24} {'NAMESPACE':12} {'STATUS':16} {'CREATED':16} {'DURATION':>8}")
        for rec in rows:
            click.echo(_row(rec, now))


def register(cli: click.Group) -> None:
    cli.add_command(ps)
