"""The queue itself from the command line: `queue status` and `queue dead`."""
from __future__ import annotations

import json
import time

import click

from .display import when
from .options import json_option


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


@queue.command("dead")
@json_option()
@click.pass_obj
def queue_dead(app, as_json):
    """Entries moved to the dead-letter stream, newest first, with the reason."""
    from cronium.core.fleet.queue import Queue

    entries = Queue(app.runtime().store, app.config).dead_letters()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo("no dead letters")
    for e in entries:
        click.echo(f"{when(float(e.get('at', 0)))}  {e.get('execution')}  job {e.get('job')}  "
                   f"deliveries {e.get('deliveries')}: {e.get('reason')}")


def register(cli: click.Group) -> None:
    cli.add_command(queue)
