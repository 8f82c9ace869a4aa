"""`cronium retry EXECUTION`: a new execution with the same job and input, linked to the old one
(`retry_of` on the new record, `retried_by` on the old). Also what `queue dead requeue` does."""
from __future__ import annotations

import json

import click
from cronium.core.errors import CroniumError

from .completion_cmd import complete_execution


def retry_execution(store, config, execution_id: str) -> str:
    """Enqueue a new execution of the deployed job EXECUTION ran, with its input; the new id."""
    from cronium.core.deploy.definition import JobDefinition
    from cronium.core.fleet.queue import Queue
    from cronium.core.model import ENDED_STATUSES

    rec = store.records.get(execution_id)
    if rec.get("status") not in ENDED_STATUSES:
        raise CroniumError(f"{execution_id} is still {rec.get('status')}: only an ended execution is retried",
                           hint=f"wait for it, or cancel it first (`cronium cancel {execution_id} --wait`)")
    if not rec.get("definition"):
        raise CroniumError(f"{execution_id} was a `cronium run` of a local script, which is not stored",
                           hint="run the script again with `cronium run`; retry works for deployed jobs")
    definition = JobDefinition.from_json(json.dumps(rec["definition"]))
    result = Queue(store, config).enqueue(definition, input=rec.get("input"), trigger="retry",
                                          retry_of=execution_id, metadata={"retry_of": execution_id})
    if not result.created:
        raise CroniumError(f"job '{definition.name}' was not enqueued: it has an active execution and its "
                           "concurrency policy is forbid", hint=f"see `cronium ps --job {definition.name}`")
    store.records.update(execution_id, {"retried_by": result.execution_id})
    return result.execution_id


@click.command()
@click.argument("execution_id", shell_complete=complete_execution)
@click.pass_obj
def retry(app, execution_id):
    """Run the deployed job of EXECUTION_ID again, with the same input: a new execution (printed),
    queued for a worker, linked to the old one (`retry_of`; the old record gets `retried_by`)."""
    click.echo(retry_execution(app.runtime().store, app.config, execution_id))


def register(cli: click.Group) -> None:
    cli.add_command(retry)
