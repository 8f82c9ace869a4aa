"""`cronium config show`: the effective configuration and where each value came from."""
from __future__ import annotations

import json

import click

from .options import json_option


@click.group("config")
def config_group():
    """Inspect configuration."""


@config_group.command("show")
@json_option("Print JSON: key -> {value, source}.")
@click.pass_obj
def show(app, as_json):
    """Print every effective value with its source (flag, env, file, defaults); secrets masked."""
    from cronium.core.config import unknown_env

    cfg = app.config
    settings = cfg.settings()
    if as_json:
        click.echo(json.dumps({s.key: {"value": s.shown(), "source": s.source} for s in settings}, indent=2))
    else:
        width = max(len(s.key) for s in settings)
        for s in settings:
            click.echo(f"{s.key:{width}}  {json.dumps(s.shown())}  ({s.source})")
    for name in unknown_env(config=cfg):
        click.echo(f"warning: environment variable {name} matches no config key", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(config_group)
