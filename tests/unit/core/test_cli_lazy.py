"""Built-in commands are imported on first use (`cronium.core.cli.main.BUILTIN_COMMANDS`): the table
must name every command of every command module, and nothing else."""
from __future__ import annotations

import importlib
import pkgutil

import click
import cronium.core.cli as cli_package
from cronium.core.cli.main import BUILTIN_COMMANDS, cli


def test_the_table_matches_what_the_modules_register():
    found = {}
    for info in pkgutil.iter_modules(cli_package.__path__):
        module = importlib.import_module(f"cronium.core.cli.{info.name}")
        if info.name == "main" or not hasattr(module, "register"):
            continue
        group = click.Group()
        module.register(group)
        found.update({name: info.name for name in group.commands})
    assert found == BUILTIN_COMMANDS


def test_every_command_is_listed_and_reachable():
    assert set(BUILTIN_COMMANDS) <= set(cli.list_commands(click.Context(cli)))
    assert "run" in cli.commands and cli.commands["agent"].name == "agent"
    assert cli.commands.get("no-such-command") is None
