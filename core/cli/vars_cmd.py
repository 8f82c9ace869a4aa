"""`cronium vars`: the variables jobs read and write, per namespace, on the same store."""
from __future__ import annotations

import json
import math

import click
from cronium.core.errors import UsageError
from cronium.sidecar.variable_script import VariableLimits

from .options import json_option, namespace_option


def _ns(app, namespace):
    """The namespace to use; must run before anything reads app.config (it is loaded once)."""
    if namespace:
        app.flags["namespace"] = namespace
    return app.config["namespace"]


@click.group("vars")
def vars_group():
    """Read and write job variables (the values cronium.get_variable() sees)."""


@vars_group.command("list")
@namespace_option
@json_option("Print a JSON object.")
@click.pass_obj
def list_(app, namespace, as_json):
    """List the variables of a namespace."""
    ns = _ns(app, namespace)
    values = app.runtime().store.variables.all(ns)
    if as_json:
        click.echo(json.dumps(values, ensure_ascii=False))
        return
    for key, value in values.items():
        click.echo(f"{key}\t{json.dumps(value, ensure_ascii=False)}")


@vars_group.command("get")
@click.argument("key")
@namespace_option
@click.pass_obj
def get(app, key, namespace):
    """Print the JSON value of KEY."""
    ns = _ns(app, namespace)
    click.echo(json.dumps(app.runtime().store.variables.get(ns, key), ensure_ascii=False))


@vars_group.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as a string instead of parsing it as JSON.")
@namespace_option
@click.pass_obj
def set_(app, key, value, as_string, namespace):
    """Set KEY to VALUE (JSON: '"hi"', 42, true, null, '{"a": 1}')."""
    if not as_string:
        value = _parse_json_value(value)
    ns = _ns(app, namespace)
    cfg = app.config
    limits = VariableLimits(max_value_bytes=cfg["variables.max_value_bytes"], max_count=cfg["variables.max_count"],
                            max_bytes=cfg["variables.max_bytes"])
    app.runtime().store.variables.set(ns, key, value, limits=limits)


def _parse_json_value(text: str):
    """VALUE as JSON; only finite numbers (NaN, Infinity and 1e400 are refused, as by the runtime API)."""
    def finite(number: str) -> float:
        if not math.isfinite(parsed := float(number)):
            raise ValueError(number)
        return parsed

    def no_constant(name: str):
        raise ValueError(name)

    try:
        return json.loads(text, parse_float=finite, parse_constant=no_constant)
    except ValueError:
        raise UsageError(f"VALUE {text!r} is not valid JSON with finite numbers",
                         hint=f"""quote strings as JSON ('"{text}"') or pass --string; NaN, Infinity and """
                              "numbers beyond ±1.8e308 cannot be stored") from None


@vars_group.command("delete")
@click.argument("key")
@namespace_option
@click.pass_obj
def delete(app, key, namespace):
    """Delete KEY."""
    from cronium.core.errors import NotFound

    ns = _ns(app, namespace)
    if not app.runtime().store.variables.delete(ns, key):
        raise NotFound(f"no variable '{key}' in namespace '{ns}'")


def register(cli: click.Group) -> None:
    cli.add_command(vars_group)
