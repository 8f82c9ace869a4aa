"""`cronium plugins`: which plugins are installed, where from, which hooks, enabled or not."""
from __future__ import annotations

import json

import click

from .options import json_option


@click.command("plugins")
@json_option()
@click.pass_obj
def plugins(app, as_json):
    """List plugins found through the `cronium` entry-point group (built-in and third-party)."""
    from cronium.core.plugins import create_plugin_manager

    pm = create_plugin_manager(app.config["plugins.disabled"])
    infos = pm.plugin_infos()
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    for info in infos:
        state = "enabled" if info.enabled else "disabled"
        kind = "built-in" if info.builtin else "third-party"
        click.echo(f"{info.name:18} {state:9} {kind:11} {info.distribution} {info.version}  ({info.module})")
        click.echo(f"{'':18} hooks: {', '.join(info.hooks) if info.hooks else '(not loaded)'}")


def register(cli: click.Group) -> None:
    cli.add_command(plugins)
