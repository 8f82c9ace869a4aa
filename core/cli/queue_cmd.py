"""The queue itself from the command line: `queue status` and `queue dead`."""
from __future__ import annotations

import json
import time

import click

from .completion_cmd import complete_execution
from .display import when
from .options import json_option
from .retry_cmd import retry_execution


@click.group()
def queue():
    """The queue itself: depth, workers, dead letters."""


@queue.command("status")
@json_option()
@click.pass_obj
def queue_status(app, as_json):
    """Entries waiting, running (pending), delayed and dead-lettered; consumers and live processes."""
    from cronium.core.fleet.queue import Queue

    q = Queue(app.runtime().store, app.config)
    stats = q.stats()
    beats = q.store.owners.heartbeats()
    if as_json:
        click.echo(json.dumps({**stats, "heartbeats": beats}, indent=2))
        return
    click.echo(f"waiting {stats['waiting']}, running {stats['pending']}, delayed {stats['delayed']}, "
               f"dead letters {stats['dead_letters']}")
    for c in stats["consumers"]:
        click.echo(f"  consumer {c['name']}: {c['pending']} pending, idle {c['idle_ms'] / 1000:.1f}s, "
                   f"{'alive' if c['alive'] else 'heartbeat expired'}")
    for hb in beats:
        extra = f", running {hb['running']}/{hb['concurrency']}" if "running" in hb else ""
        click.echo(f"  {hb.get('kind', '?'):9} {hb['owner']} last beat {time.time() - hb.get('t', 0):.1f}s ago{extra}")


@queue.group("dead", invoke_without_command=True)
@json_option()
@click.pass_context
def queue_dead(ctx, as_json):
    """Entries moved to the dead-letter stream, newest first, with the reason (`requeue` runs them again)."""
    from cronium.core.fleet.queue import Queue

    if ctx.invoked_subcommand is not None:
        return
    app = ctx.obj
    entries = Queue(app.runtime(read_only=True).store, app.config).dead_letters()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo("no dead letters")
    for e in entries:
        click.echo(f"{when(float(e.get('at', 0)))}  {e.get('execution')}  job {e.get('job')}  "
                   f"deliveries {e.get('deliveries')}: {e.get('reason')}")


@queue_dead.command("requeue")
@click.argument("execution_ids", nargs=-1, metavar="EXECUTION…", shell_complete=complete_execution)
@click.option("--all", "every", is_flag=True, help="Requeue every dead letter.")
@click.pass_obj
def queue_dead_requeue(app, execution_ids, every):
    """Run dead-lettered executions again: each becomes a new queued execution of its job (same
    input, `retry_of` the old one; printed as OLD -> NEW) and leaves the dead letters."""
    from cronium.core.errors import UsageError
    from cronium.core.fleet.queue import Queue

    if bool(execution_ids) == every:
        raise UsageError("give the EXECUTION ids to requeue, or --all (not both)",
                         hint="see them with `cronium queue dead`")
    store = app.runtime().store
    letters = Queue(store, app.config).dead_letters(count=100000)
    chosen = letters if every else [e for e in letters if e.get("execution") in execution_ids]
    missing = set(execution_ids) - {e.get("execution") for e in chosen}
    if missing:
        raise UsageError(f"not in the dead letters: {', '.join(sorted(missing))}", hint="see `cronium queue dead`")
    for letter in chosen:
        new = retry_execution(store, app.config, letter["execution"])
        store.queue.remove_dead_letter(letter["letter_id"])
        click.echo(f"{letter['execution']} -> {new}")


def register(cli: click.Group) -> None:
    cli.add_command(queue)
