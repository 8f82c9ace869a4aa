"""`cronium prune`: remove finished executions — records, log streams, index entries, log files."""
from __future__ import annotations

import json

import click

from .options import dry_run_option, json_option


@click.command()
@click.option("--older-than", metavar="AGE", help="Remove executions created more than AGE ago (e.g. 7d, 12h, 90m).")
@click.option("--keep", type=int, metavar="N", help="Keep the newest N executions; remove older finished ones (0: every finished one).")
@dry_run_option("Only report what would be removed.")
@json_option()
@click.pass_obj
def prune(app, older_than, keep, dry_run, as_json):
    """Remove finished executions (succeeded, failed, timed_out, oom_killed, cancelled, error, and
    lost ones no queue can run again) with their log stream, index entries and log file. Never a
    queued, pending or running one. With neither --older-than nor --keep, applies the configured
    retention (retention.max_age, retention.max_count); with both, an execution goes when either
    says so."""
    from cronium.core.retention import RetentionPolicy
    from cronium.core.retention import prune as apply_policy

    policy = RetentionPolicy.from_options(app.config, older_than, keep)
    report = apply_policy(app.runtime(), policy, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "would remove" if dry_run else "removed"
        for execution in report.removed:
            click.echo(f"{verb} {execution}")
        click.echo(f"{len(report.removed)} execution(s) {verb}, {len(report.files)} log file(s)")
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.errors:
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(prune)
