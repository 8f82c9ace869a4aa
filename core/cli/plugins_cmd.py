"""`cronium plugins`: which plugins are loaded, where from, which hooks, enabled or not."""
from __future__ import annotations

import json

import click

from .options import json_option


@click.command("plugins")
@json_option()
@click.pass_obj
def plugins(app, as_json):
    """List plugins: built-in, installed (the `cronium` entry-point group) and the files of the
    plugins directory (plugins_dir, --plugins-dir). Source is `builtin`, the distribution of an
    installed plugin, or `directory`."""
    from cronium.core.plugins import SOURCE_DIRECTORY, plugin_manager_for

    infos = plugin_manager_for(app.config).plugin_infos()
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    for info in infos:
        state = "enabled" if info.enabled else "disabled"
        where = info.path if info.source == SOURCE_DIRECTORY else f"{info.version}  ({info.module})"
        click.echo(f"{info.name:18} {state:9} {info.source:10} {where}")
        click.echo(f"{'':18} hooks: {', '.join(info.hooks) if info.hooks else '(not loaded)'}")


def register(cli: click.Group) -> None:
    cli.add_command(plugins)
