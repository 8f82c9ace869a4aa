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
        #: Where a flag-level value came from, as the user typed it (`--set limits.max_cpus=9`,
        #: `--raw`); keys not listed are reported as `flag --KEY`.
        self.flag_sources: dict[str, str] = {}

    @cached_property
    def config(self):
        from cronium.core.config import load_config

        return load_config(config_file=self.config_file, flags={**self.overrides, **self.flags},
                           flag_sources=self.flag_sources)

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


def _parse_set(values: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """`--set KEY=VALUE` items -> (values by key, the source each is reported under: the item as given)."""
    import tomllib

    out, sources = {}, {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--set")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        out[key.strip()] = value
        sources[key.strip()] = f"--set {item}"
    return out, sources


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
    overrides, sources = _parse_set(params.get("settings") or ())
    if params.get("plugins_dir") is not None:
        overrides["plugins_dir"] = params["plugins_dir"]
        sources["plugins_dir"] = "flag --plugins-dir"
    app = AppContext(params.get("config_file"), bool(params.get("debug")), overrides)
    app.flag_sources.update(sources)
    return app


#: Built-in commands and the module of this package that defines (registers) each. A module is
#: imported when one of its commands is used or the list is shown, so `cronium run` imports only
#: what it needs (tests/unit/core/test_cli_lazy.py checks this table against the modules).
BUILTIN_COMMANDS = {
    "run": "run_cmd", "ps": "ps_cmd", "inspect": "records_cmd", "logs": "records_cmd", "deploy": "deploy_cmd",
    "deployments": "deploy_cmd", "cancel": "jobs_cmd", "jobs": "jobs_cmd", "submit": "jobs_cmd",
    "scheduler": "fleet_cmd", "serve": "fleet_cmd", "worker": "fleet_cmd", "queue": "queue_cmd", "vars": "vars_cmd",
    "gc": "gc_cmd", "prune": "prune_cmd", "plugins": "plugins_cmd", "config": "config_cmd", "images": "images_cmd",
    "services": "services_cmd", "doctor": "doctor_cmd", "completion": "completion_cmd", "retry": "retry_cmd",
    "agent": "agent_cmd", "stats": "stats_cmd", "dashboard": "dashboard_cmd",
}


class LazyCommands(dict):
    """`cli.commands`: a built-in command's module is imported on first use of any of its names;
    iterating (the command list, `--help`) imports them all."""

    def __init__(self, group: click.Group, table: dict[str, str]):
        super().__init__()
        self._group = group
        self._pending = dict(table)

    def _load(self, name: str) -> None:
        module = self._pending.get(name)
        if module is not None:
            import importlib

            for other in [n for n, m in self._pending.items() if m == module]:
                del self._pending[other]
            importlib.import_module(f"{__package__}.{module}").register(self._group)

    def _load_all(self) -> None:
        while self._pending:
            self._load(next(iter(self._pending)))

    def __missing__(self, name: str):
        self._load(name)
        if not dict.__contains__(self, name):
            raise KeyError(name)
        return dict.__getitem__(self, name)

    def __contains__(self, name) -> bool:
        self._load(name)
        return dict.__contains__(self, name)

    def get(self, name, default=None):
        self._load(name)
        return dict.get(self, name, default)

    def __iter__(self):
        self._load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load_all()
        return dict.__len__(self)

    def keys(self):
        self._load_all()
        return dict.keys(self)

    def values(self):
        self._load_all()
        return dict.values(self)

    def items(self):
        self._load_all()
        return dict.items(self)


cli.commands = LazyCommands(cli, BUILTIN_COMMANDS)


def main(argv: list[str] | None = None) -> int:
    try:
        return cli.main(args=argv, prog_name="cronium", standalone_mode=True) or 0
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
