"""The top-level group: global options, lazy config/runtime, errors turned into clean messages."""
from __future__ import annotations

import sys
from functools import cached_property
from typing import Any

import click
from cronium.core import __version__
from cronium.core.errors import CroniumError


class AppContext:
    """What commands share: the global options, and config/runtime created on first use."""

    def __init__(self, config_file: str | None, debug: bool, overrides: dict[str, Any]):
        self.config_file = config_file
        self.debug = debug
        self.overrides = overrides
        self.flags: dict[str, Any] = {}

    @cached_property
    def config(self):
        from cronium.core.config import load_config

        return load_config(config_file=self.config_file, flags={**self.overrides, **self.flags})

    def runtime(self, *, console: bool = False, warm_pool: bool = False, read_only: bool = False):
        """The process's Runtime. One-shot commands keep no warm sidecar pool; long-lived ones
        (worker, serve) ask for it. Read-only commands (ps, logs, inspect, doctor, …) pass
        `read_only`: they use the managed Redis when it runs and never start or re-create it."""
        from cronium.core.runtime import Runtime

        rt = self.__dict__.get("_runtime")
        if rt is None:
            rt = self.__dict__["_runtime"] = Runtime(self.config, console=console, warm_pool=warm_pool,
                                                      read_only=read_only)
        return rt

    def close_runtime(self) -> None:
        """Close the Runtime (if one was made); the next `runtime()` makes a new one."""
        rt = self.__dict__.pop("_runtime", None)
        if rt is not None:
            rt.close()


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    import tomllib

    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--set")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        out[key.strip()] = value
    return out


class CroniumGroup(click.Group):
    """Turns project errors into `error: …` + a fix, with the error's exit code; `--debug` re-raises.

    Commands contributed by plugins (the `register_commands` hook) are loaded only when a name is
    not a built-in command or when the command list is shown, so built-in commands start fast."""

    _plugins_loaded = False

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if CroniumGroup._plugins_loaded:
            return
        CroniumGroup._plugins_loaded = True
        from cronium.core.plugins import Hooks, plugin_manager_for

        # Click resolves the command before the group's callback sets ctx.obj: read the global
        # options (--config, --set, --plugins-dir) from the parsed parameters then.
        app = ctx.obj if isinstance(ctx.obj, AppContext) else _app_context(ctx.params)
        Hooks(plugin_manager_for(app.config)).register_commands(cli=self)

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)
        if command is None and not CroniumGroup._plugins_loaded:
            try:
                self._load_plugin_commands(ctx)
            except CroniumError:
                return None
            command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx: click.Context):
        try:
            self._load_plugin_commands(ctx)
        except CroniumError:
            pass
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CroniumError as exc:
            app = ctx.obj if isinstance(ctx.obj, AppContext) else None
            if app is not None and app.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=CroniumGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cronium")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="CRONIUM_CONFIG",
              help="Configuration file (default: ./cronium.toml when present).")
@click.option("--debug", is_flag=True, envvar="CRONIUM_DEBUG", help="Show tracebacks for errors.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a config key for this command (highest precedence), e.g. --set logs.file=false.")
@click.option("--plugins-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Also load every *.py file in DIR as a plugin (config key plugins_dir, CRONIUM_PLUGINS_DIR).")
@click.option("--no-color", is_flag=True, expose_value=False, is_eager=True, callback=lambda ctx, p, v: _no_color(v),
              help="No colour or cursor movement (also: NO_COLOR set, TERM=dumb, or not a terminal).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, debug: bool, settings: tuple[str, ...],
        plugins_dir: str | None) -> None:
    """cronium runs untrusted job scripts in Docker containers, each with its own network, a
    runtime-API sidecar and a token scoped to that one execution.

    \b
    Quick start:
      make setup                 # engine, venv, images, managed Redis
      cronium run examples/hello.py
    """
    ctx.obj = _app_context(ctx.params)


def _no_color(value: bool) -> None:
    if value:
        from cronium.core.color import disable_color

        disable_color()


def _app_context(params: dict[str, Any]) -> AppContext:
    """The AppContext of the group's parsed global options."""
    overrides = _parse_set(params.get("settings") or ())
    if params.get("plugins_dir") is not None:
        overrides["plugins_dir"] = params["plugins_dir"]
    return AppContext(params.get("config_file"), bool(params.get("debug")), overrides)


def _register_commands() -> None:
    from . import (
        agent_cmd,
        completion_cmd,
        config_cmd,
        deploy_cmd,
        doctor_cmd,
        fleet_cmd,
        gc_cmd,
        images_cmd,
        jobs_cmd,
        plugins_cmd,
        prune_cmd,
        ps_cmd,
        queue_cmd,
        records_cmd,
        retry_cmd,
        run_cmd,
        services_cmd,
        vars_cmd,
    )

    for module in (run_cmd, ps_cmd, records_cmd, deploy_cmd, jobs_cmd, fleet_cmd, queue_cmd, vars_cmd, gc_cmd,
                   prune_cmd, plugins_cmd, config_cmd, images_cmd, services_cmd, doctor_cmd, completion_cmd,
                   retry_cmd, agent_cmd):
        module.register(cli)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    try:
        return cli.main(args=argv, prog_name="cronium", standalone_mode=True) or 0
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
