"""`cronium ps`: executions that are queued or running (with `-a`, finished ones too), newest first.

It reads the `P executions` index (a sorted set by creation time that the store writes with each
record and removes with it) page by page from the newest entry, and the live set for executions
older than the pages it reads; never a SCAN of the keyspace.
"""
from __future__ import annotations

import json
import time

import click
from cronium.core.model import LIVE_STATUSES, Status

from .completion_cmd import complete_job
from .display import ago, duration
from .jobs_cmd import STATUSES
from .options import json_option, parse_since, quiet_option, since_option

#: The record fields `ps` shows (and prints with --json).
FIELDS = ("id", "job_id", "job_name", "namespace", "status", "exit_code", "error", "trigger", "attempt", "host",
          "created_at", "started_at", "finished_at")
#: What `ps` shows without -a: executions not yet ended.
NOT_ENDED = (Status.QUEUED, *LIVE_STATUSES)
#: Index entries one `ps` reads at most (newest first); older ones are reached with --since.
SCAN_BUDGET = 20000
PAGE = 500


def select(store, *, show_all: bool, since: float | None, namespace: str | None, job: str | None,
           statuses: tuple[str, ...], limit: int) -> list[dict]:
    """The executions `ps` shows, newest first."""
    wanted = set(statuses) or (None if show_all else set(NOT_ENDED))

    def keep(rec: dict) -> bool:
        return ((wanted is None or rec.get("status") in wanted)
                and (since is None or (rec.get("created_at") or 0) >= since)
                and (namespace is None or rec.get("namespace") == namespace)
                and (job is None or job in (rec.get("job_id"), rec.get("job_name"))))

    rows: list[dict] = []
    seen: set[str] = set()
    offset = 0
    while len(rows) < limit and offset < SCAN_BUDGET:
        ids = store.records.window(since=since, offset=offset, count=PAGE)
        offset += PAGE
        rows += [r for r in store.records.summaries(ids, FIELDS) if keep(r)]
        seen.update(ids)
        if len(ids) < PAGE:
            break
    if wanted is None or wanted & set(LIVE_STATUSES):
        older = [i for i in store.records.live_ids() if i not in seen]
        rows += [r for r in store.records.summaries(older, FIELDS) if keep(r)]
    rows.sort(key=lambda r: r.get("created_at") or 0, reverse=True)
    return rows[:limit]


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
