"""`cronium gc`: remove what crashed orchestrators left behind."""
from __future__ import annotations

import json

import click

from .options import dry_run_option, json_option


@click.command()
@dry_run_option("Only report what would be removed.")
@json_option()
@click.pass_obj
def gc(app, dry_run, as_json):
    """Remove what crashed orchestrators left behind: every plugin removes its own orphans
    (containers, networks, volumes, firewall rules, Redis ACL users) whose owner is gone (its
    heartbeat expired, or its process died on this host) or whose deadline passed. Never touches a
    live job of another process, nor another installation's. Executions whose owner died are
    marked `lost`."""
    from cronium.core.reaper import reap

    report = reap(app.runtime(), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "would remove" if dry_run else "removed"
        for item in report.removed:
            click.echo(f"{verb} {item}")
        for execution in report.lost:
            click.echo(f"{'would mark' if dry_run else 'marked'} {execution} lost")
        click.echo(f"{len(report.removed)} resource(s) {verb}, {len(report.lost)} execution(s) lost, "
                   f"{len(report.kept)} resource(s) of live jobs kept")
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
    if report.errors:
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(gc)
