"""Loading plugins and calling hooks.

Built-in plugins and third-party plugins are found the same way: through the `cronium`
entry-point group. `BUILTIN_PLUGINS` below must match the group declared in `pyproject.toml`
(a test checks it). Plugins can be disabled by name with `plugins.disabled` in config or
`CRONIUM_DISABLE_PLUGINS=a,b`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import (
    HookFailures,
    MissingProvider,
    PluginLoadError,
    PluginValidationError,
)

PROJECT = "cronium"
ENTRY_POINT_GROUP = "cronium"
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The built-in plugins: entry-point name -> module. Keep in sync with pyproject.toml.
BUILTIN_PLUGINS: dict[str, str] = {
    "token": "cronium.plugins.token",
    "network": "cronium.plugins.network",
    "security": "cronium.plugins.security",
    "sidecar": "cronium.plugins.sidecar",
    "logs": "cronium.plugins.logs",
    "docker_executor": "cronium.plugins.docker_executor",
}


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str
    enabled: bool
    builtin: bool
    hooks: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "distribution": self.distribution,
                "version": self.version, "enabled": self.enabled, "builtin": self.builtin,
                "hooks": list(self.hooks)}


class CroniumPluginManager(pluggy.PluginManager):
    """A pluggy PluginManager that remembers where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def plugin_infos(self) -> list[PluginInfo]:
        return sorted(self.infos.values(), key=lambda p: (not p.builtin, p.name))


def disabled_from_env(environ: dict[str, str] | None = None) -> set[str]:
    raw = (environ if environ is not None else os.environ).get("CRONIUM_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _hook_names(plugin: object) -> tuple[str, ...]:
    names = []
    for attr in dir(plugin):
        fn = getattr(plugin, attr, None)
        if callable(fn) and hasattr(fn, PROJECT + "_impl"):
            names.append(attr)
    return tuple(sorted(names))


def create_plugin_manager(disabled: Iterable[str] = (), *, environ: dict[str, str] | None = None,
                          entry_points: Iterable[metadata.EntryPoint] | None = None) -> CroniumPluginManager:
    """Load every plugin of the `cronium` entry-point group, except the disabled ones.

    Raises `PluginLoadError` (naming the entry point and the distribution) when a plugin fails to
    import or register, and `PluginValidationError` (naming the plugin) when it implements a hook
    that does not exist.
    """
    blocked = set(disabled) | disabled_from_env(environ)
    pm = CroniumPluginManager()
    eps = list(entry_points) if entry_points is not None else list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    seen: set[str] = set()
    for ep in sorted(eps, key=lambda e: e.name):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "?"
        builtin = BUILTIN_PLUGINS.get(ep.name) == ep.value
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            pm.infos[ep.name] = PluginInfo(ep.name, ep.value, dist, version, False, builtin, ())
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure of a plugin is reported the same way
            raise PluginLoadError(f"{ep.name} = {ep.value}", dist, f"{type(exc).__name__}: {exc}") from exc
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:
            raise PluginValidationError(f"plugin '{ep.name}' (distribution '{dist}') is invalid: {exc}",
                                        hint="check the hook names and argument names against docs/plugins.md") from exc
        pm.infos[ep.name] = PluginInfo(ep.name, ep.value, dist, version, True, builtin, _hook_names(plugin))
    check_pending(pm)
    return pm


def check_pending(pm: pluggy.PluginManager) -> None:
    """Fail when a registered plugin implements a hook that has no spec (e.g. a misspelling)."""
    for name in pm.hook.__dict__:
        if name.startswith("_"):
            continue
        caller = getattr(pm.hook, name)
        if caller.spec is None:
            for impl in caller.get_hookimpls():
                if not impl.opts.get("optionalhook"):
                    raise PluginValidationError(
                        f"plugin '{impl.plugin_name}' implements unknown hook '{name}'",
                        hint="check the spelling against the hooks in docs/plugins.md "
                             "(or mark it @hookimpl(optionalhook=True))")


def _impls(pm: pluggy.PluginManager, hook: str) -> list[pluggy.HookImpl]:
    # pluggy calls implementations last-registered first, honouring tryfirst/trylast: mirror that.
    return list(reversed(getattr(pm.hook, hook).get_hookimpls()))


def notify(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[tuple[str, BaseException]]:
    """Call every implementation of a notification hook, even if some raise.

    Returns the failures as (plugin name, exception); the caller decides how to report them.
    """
    failures: list[tuple[str, BaseException]] = []
    for impl in _impls(pm, hook):
        try:
            impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:
            failures.append((impl.plugin_name, exc))
    return failures


def notify_or_raise(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> None:
    failures = notify(pm, hook, **kwargs)
    if failures:
        raise HookFailures(hook, failures)


def provide(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> Any:
    """Call a firstresult provider; a missing answer is a `MissingProvider` error."""
    result = getattr(pm.hook, hook)(**kwargs)
    if result is None:
        raise MissingProvider(hook)
    return result


def contributions(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call a contribution provider on every plugin, in call order: [(plugin name, result)]."""
    out = []
    for impl in _impls(pm, hook):
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:
            raise HookFailures(hook, [(impl.plugin_name, exc)]) from exc
        if result is None:
            continue
        if isinstance(result, (list, tuple)):
            out.extend((impl.plugin_name, r) for r in result)
        else:
            out.append((impl.plugin_name, result))
    return out
