"""Loading plugins and calling hooks.

Where plugins come from: the `cronium` entry-point group (built-in and installed plugins alike;
`BUILTIN_PLUGINS` below must match the group in `pyproject.toml`, a test checks it), then every
`*.py` file of the configured plugins directory (`plugins_dir`, `CRONIUM_PLUGINS_DIR`,
`--plugins-dir`), in file-name order, each named after its file. Any plugin can be disabled by name
with `plugins.disabled` in config or `CRONIUM_DISABLE_PLUGINS=a,b`; a disabled one is not imported.

How hooks are called: every call goes through pluggy (`pm.hook.<name>(...)`), so wrappers of both
styles (`wrapper=True`, `hookwrapper=True`) run around the implementations as pluggy defines.

- `notify()` (notifications and cleanup) calls every implementation even when some raise and
  returns every failure with its plugin's name. When one or more implementations failed, the
  wrappers see, after all of them ran, one `HookFailures` naming them all, thrown at their `yield`
  (new style) or in `outcome.exception` (old style) — where pluggy shows an implementation's
  exception. Whatever a wrapper then does, `notify()` reports every failure; a wrapper that raises
  (or fails before its `yield`, and is then skipped) is reported under its own plugin's name.
- `contributions()` collects every result in pluggy's call order and flattens lists; an
  implementation or wrapper that raises stops the call with a `HookFailures` naming its plugin.
- `provide()` calls a firstresult provider as pluggy does; no answer is a `MissingProvider` error.
- `Hooks` is the same with one typed method per hook, so a misspelled hook is an attribute error.

`Hooks(pm, without=plugins)` calls hooks without some plugins (pluggy's `subset_hook_caller`): the
hooks of one executor's run (`cronium.core.executor.hooks_for_executor`).

To keep calling after a failure, the manager replaces each registered implementation's function
(`HookImpl.function`) with a guard that does nothing special outside `notify()`/`contributions()`.
pluggy documents that attribute but not replacing it, hence the pinned `pluggy>=1.5,<2`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import (
    ConfigError,
    HookFailures,
    MissingProvider,
    PluginLoadError,
    PluginValidationError,
)

if TYPE_CHECKING:
    from .config import Config
    from .model import IssuedToken, NetworkInfo, SidecarInfo, Slot

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
    "slots": "cronium.plugins.slots",
    "swarm_network": "cronium.plugins.swarm_network",
    "swarm_sidecar": "cronium.plugins.swarm_sidecar",
    "swarm_executor": "cronium.plugins.swarm_executor",
}
#: `PluginInfo.source` of the built-in plugins and of the plugins directory's files; a third-party
#: entry-point plugin's source is the name of its distribution.
SOURCE_BUILTIN = "builtin"
SOURCE_DIRECTORY = "directory"
_CHECK_HINT = "check the hook names and argument names against docs/plugins.md"

Failures = list[tuple[str, BaseException]]


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str
    enabled: bool
    builtin: bool
    hooks: tuple[str, ...]
    #: "builtin", "directory", or the distribution a third-party entry point comes from.
    source: str
    #: The file of a plugin from the plugins directory ("" for entry-point plugins).
    path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "module": self.module, "path": self.path,
                "distribution": self.distribution, "version": self.version, "enabled": self.enabled,
                "builtin": self.builtin, "hooks": list(self.hooks)}

    def describe(self) -> str:
        """Where the plugin comes from, for error messages."""
        return f"file '{self.path}'" if self.path else f"distribution '{self.distribution}'"


# --- dispatch: the guards that let notify() and contributions() go through pluggy ---------------

class _Dispatch:
    """One `notify()` (collect) or `contributions()` (raise) call in progress."""

    def __init__(self, hook: str, *, collect: bool, last: pluggy.HookImpl | None = None):
        self.hook, self.collect, self.last = hook, collect, last
        self.failures: Failures = []
        self.summary: HookFailures | None = None

    def fail(self, plugin: str, exc: Exception) -> None:
        """Collect the failure, or (contributions) raise it as a `HookFailures` naming the plugin."""
        if not self.collect:
            raise HookFailures(self.hook, [(plugin, exc)]) from exc
        self.failures.append((plugin, exc))

    def after_implementations(self) -> None:
        """Called after the last implementation: show the wrappers what failed."""
        if self.failures:
            self.summary = HookFailures(self.hook, list(self.failures))
            raise self.summary

    def reported(self, exc: BaseException) -> bool:
        return exc is self.summary or any(exc is failed for _, failed in self.failures)


_CURRENT: ContextVar[_Dispatch | None] = ContextVar("cronium_hook_dispatch", default=None)


def _active(hook: str) -> _Dispatch | None:
    call = _CURRENT.get()
    return call if call is not None and call.hook == hook else None


def _guard(hook: str, impl: pluggy.HookImpl) -> Callable[..., Any]:
    function = impl.function
    if impl.wrapper or impl.hookwrapper:
        def guarded_wrapper(*args, **kwargs):
            call = _active(hook)
            if call is None:
                return (yield from function(*args, **kwargs))
            return (yield from _supervised(call, impl.plugin_name, function(*args, **kwargs)))
        return guarded_wrapper

    def guarded(*args, **kwargs):
        call = _active(hook)
        if call is None:
            return function(*args, **kwargs)
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            call.fail(impl.plugin_name, exc)
            result = None
        if impl is call.last:
            call.after_implementations()
        return result
    return guarded


def _supervised(call: _Dispatch, plugin: str, gen):
    """Drive one wrapper's generator as pluggy would, charging what it raises to its plugin."""
    try:
        next(gen)
    except StopIteration:
        call.fail(plugin, RuntimeError("the wrapper returned without yielding"))
        return (yield)
    except Exception as exc:
        call.fail(plugin, exc)
        return (yield)  # skipped: it steps aside and the implementations still run
    thrown = None
    try:
        sent = yield
    except GeneratorExit:
        gen.close()
        raise
    except BaseException as exc:  # an implementation or an inner wrapper failed
        thrown, sent = exc, None
    try:
        if thrown is None:
            gen.send(sent)
        else:
            gen.throw(thrown)
    except StopIteration as stop:
        return stop.value
    except Exception as exc:
        if exc is not thrown and not call.reported(exc):
            call.fail(plugin, exc)
        raise
    gen.close()
    call.fail(plugin, RuntimeError("the wrapper yielded more than once"))
    if thrown is not None:
        raise thrown
    return sent


class CroniumPluginManager(pluggy.PluginManager):
    """A pluggy PluginManager that remembers where each plugin came from and guards every
    implementation it registers (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is not None:
            for caller in self.get_hookcallers(plugin) or ():
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin:
                        impl.function = _guard(caller.name, impl)  # the one use of pluggy internals
        return registered

    def check_pending(self) -> None:
        """Fail when a plugin implements a hook that has no spec (e.g. a misspelling), naming the
        plugin, where it comes from and the hook."""
        try:
            super().check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.get_name(exc.plugin) or repr(exc.plugin)
            info = self.infos.get(name)
            unknown = sorted(caller.name for caller in self.get_hookcallers(exc.plugin) or ()
                             if not caller.has_spec() and any(impl.plugin is exc.plugin and not impl.optionalhook
                                                              for impl in caller.get_hookimpls()))
            origin = f" ({info.describe()})" if info else ""
            raise PluginValidationError(
                f"plugin '{name}'{origin} implements unknown hook {', '.join(map(repr, unknown))}",
                hint="check the spelling against the hooks in docs/plugins.md "
                     "(or mark it @hookimpl(optionalhook=True))") from exc

    def plugin_infos(self) -> list[PluginInfo]:
        return sorted(self.infos.values(), key=lambda p: (not p.builtin, p.source == SOURCE_DIRECTORY, p.name))


# --- loading -------------------------------------------------------------------------------------

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


def create_plugin_manager(disabled: Iterable[str] = (), *, plugins_dir: str | os.PathLike | None = None,
                          environ: dict[str, str] | None = None,
                          entry_points: Iterable[metadata.EntryPoint] | None = None) -> CroniumPluginManager:
    """Load every plugin of the `cronium` entry-point group, then every `*.py` of `plugins_dir`,
    except the disabled ones.

    Raises `PluginLoadError` (naming the entry point and distribution, or the file) when a plugin
    fails to import or register, and `PluginValidationError` (naming the plugin and where it comes
    from) when it implements a hook that does not exist or has wrong argument names.
    """
    blocked = set(disabled) | disabled_from_env(environ)
    pm = CroniumPluginManager()
    eps = list(entry_points) if entry_points is not None else list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    for ep in sorted(eps, key=lambda e: e.name):
        if ep.name not in pm.infos:
            _load_entry_point(pm, ep, blocked)
    if plugins_dir:
        for path in directory_plugin_files(plugins_dir):
            _load_file(pm, path, blocked)
    pm.check_pending()
    return pm


def plugin_manager_for(config: "Config") -> CroniumPluginManager:
    """The plugin manager a `Config` asks for (`plugins.disabled`, `plugins_dir`)."""
    return create_plugin_manager(config["plugins.disabled"], plugins_dir=config["plugins_dir"] or None)


def _register(pm: CroniumPluginManager, plugin: object, info: PluginInfo) -> None:
    try:
        pm.register(plugin, name=info.name)
    except pluggy.PluginValidationError as exc:
        raise PluginValidationError(f"plugin '{info.name}' ({info.describe()}) is invalid: {exc}",
                                    hint=_CHECK_HINT) from exc
    pm.infos[info.name] = info


def _load_entry_point(pm: CroniumPluginManager, ep: metadata.EntryPoint, blocked: set[str]) -> None:
    dist = ep.dist.name if ep.dist is not None else "unknown"
    version = ep.dist.version if ep.dist is not None else "?"
    builtin = BUILTIN_PLUGINS.get(ep.name) == ep.value
    info = PluginInfo(name=ep.name, module=ep.value, distribution=dist, version=version, enabled=False,
                      builtin=builtin, hooks=(), source=SOURCE_BUILTIN if builtin else dist)
    if ep.name in blocked:
        pm.set_blocked(ep.name)
        pm.infos[ep.name] = info
        return
    try:
        plugin = ep.load()
    except Exception as exc:  # any import-time failure of a plugin is reported the same way
        raise PluginLoadError(f"{ep.name} = {ep.value}", dist, f"{type(exc).__name__}: {exc}") from exc
    _register(pm, plugin, replace(info, enabled=True, hooks=_hook_names(plugin)))


def directory_plugin_files(plugins_dir: str | os.PathLike) -> list[Path]:
    """The plugin files of a plugins directory: every `*.py` except hidden ones, sorted by name."""
    directory = Path(plugins_dir).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"the plugins directory '{directory}' does not exist or is not a directory",
                          key="plugins_dir", hint="create it, or point plugins_dir (CRONIUM_PLUGINS_DIR, "
                                                  "--plugins-dir) at the folder holding your plugin files")
    return sorted(p for p in directory.glob("*.py") if not p.name.startswith(".") and p.is_file())


def _load_file(pm: CroniumPluginManager, path: Path, blocked: set[str]) -> None:
    name, path = path.stem, path.resolve()
    info = PluginInfo(name=name, module=_module_name(path), distribution="", version="", enabled=False,
                      builtin=False, hooks=(), source=SOURCE_DIRECTORY, path=str(path))
    if name in pm.infos:
        raise PluginValidationError(f"plugin file '{path}' is named '{name}', like the plugin from "
                                    f"{pm.infos[name].describe()}",
                                    hint="rename the file: a plugin from the plugins directory is named after its file")
    if name in blocked:
        pm.set_blocked(name)
        pm.infos[name] = info
        return
    module = _import_file(info)
    _register(pm, module, replace(info, enabled=True, hooks=_hook_names(module)))


def _module_name(path: Path) -> str:
    """A module name no real module has: one per file path."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return f"_cronium_plugins_dir_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"


def _import_file(info: PluginInfo) -> object:
    """Import a plugin file once per process (like an entry point's module)."""
    loaded = sys.modules.get(info.module)
    if loaded is not None and getattr(loaded, "__file__", None) == info.path:
        return loaded
    spec = importlib.util.spec_from_file_location(info.module, info.path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[info.module] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import-time failure of a plugin file is reported the same way
        sys.modules.pop(info.module, None)
        raise PluginLoadError(f"{info.name} = {info.path}", "", f"{type(exc).__name__}: {exc}",
                              path=info.path) from exc
    return module


# --- calling hooks -------------------------------------------------------------------------------

def notify(pm: CroniumPluginManager, hook: str, *, caller=None, **kwargs: Any) -> Failures:
    """Call a notification hook through pluggy: every implementation runs even if some raise.
    `caller`: the hook caller to use (default `pm.hook.<hook>`; `Hooks` passes a subset).

    Returns the failures as (plugin name, exception); the caller decides how to report them.
    """
    caller = caller or getattr(pm.hook, hook)
    inner = [impl for impl in caller.get_hookimpls() if not (impl.wrapper or impl.hookwrapper)]
    # pluggy calls the implementations from the end of this list: the first one is called last.
    call = _Dispatch(hook, collect=True, last=inner[0] if inner else None)
    token = _CURRENT.set(call)
    try:
        caller(**kwargs)
    except Exception as exc:
        if not call.reported(exc):
            raise
    finally:
        _CURRENT.reset(token)
    return call.failures


def notify_or_raise(pm: CroniumPluginManager, hook: str, *, caller=None, **kwargs: Any) -> None:
    """`notify()`, raising one `HookFailures` that names every failed plugin."""
    failures = notify(pm, hook, caller=caller, **kwargs)
    if failures:
        raise HookFailures(hook, failures)


def provide(pm: CroniumPluginManager, hook: str, *, caller=None, **kwargs: Any) -> Any:
    """Call a firstresult provider; a missing answer is a `MissingProvider` error."""
    result = (caller or getattr(pm.hook, hook))(**kwargs)
    if result is None:
        raise MissingProvider(hook)
    return result


def contributions(pm: CroniumPluginManager, hook: str, *, caller=None, **kwargs: Any) -> list[Any]:
    """Call a contribution provider through pluggy: every result in call order, lists flattened,
    None skipped. An implementation or wrapper that raises is a `HookFailures` naming its plugin."""
    token = _CURRENT.set(_Dispatch(hook, collect=False))
    try:
        results = (caller or getattr(pm.hook, hook))(**kwargs)
    finally:
        _CURRENT.reset(token)
    out: list[Any] = []
    for result in results or ():
        if isinstance(result, (list, tuple)):
            out.extend(result)
        else:
            out.append(result)
    return [item for item in out if item is not None]


class Hooks:
    """One method per hookspec, with its argument names (keyword-only), in lifecycle order.

    Notifications return the failures [(plugin name, exception)] — or, on `hooks.strict`, raise
    them as one `HookFailures`; firstresult providers return the answer (`MissingProvider` when no
    plugin answers); contributions return the flattened list of results.
    """

    def __init__(self, pm: CroniumPluginManager, *, strict: bool = False, without: tuple[object, ...] = ()):
        self.pm = pm
        self._strict = strict
        self._without = without

    @cached_property
    def strict(self) -> "Hooks":
        """The same hooks, with notifications raising `HookFailures` instead of returning them."""
        return Hooks(self.pm, strict=True, without=self._without)

    def _caller(self, hook: str):
        return self.pm.subset_hook_caller(hook, self._without) if self._without else getattr(self.pm.hook, hook)

    def _notify(self, hook: str, **kwargs: Any) -> Failures:
        if self._strict:
            notify_or_raise(self.pm, hook, caller=self._caller(hook), **kwargs)
            return []
        return notify(self.pm, hook, caller=self._caller(hook), **kwargs)

    def _provide(self, hook: str, **kwargs: Any) -> Any:
        return provide(self.pm, hook, caller=self._caller(hook), **kwargs)

    def _contributions(self, hook: str, **kwargs: Any) -> list[Any]:
        return contributions(self.pm, hook, caller=self._caller(hook), **kwargs)

    def startup(self, *, runtime) -> Failures:
        return self._notify("startup", runtime=runtime)

    def register_commands(self, *, cli) -> list[Any]:
        return self._contributions("register_commands", cli=cli)

    def issue_token(self, *, execution, runtime) -> "IssuedToken":
        return self._provide("issue_token", execution=execution, runtime=runtime)

    def token_issued(self, *, execution, claims) -> Failures:
        return self._notify("token_issued", execution=execution, claims=claims)

    def claim_slot(self, *, execution, token, sidecar_options, launch, runtime, resources) -> "Slot | None":
        return self._caller("claim_slot")(execution=execution, token=token, sidecar_options=sidecar_options,
                                          launch=launch, runtime=runtime, resources=resources)  # None: normal path

    def create_network(self, *, execution, runtime, resources) -> "NetworkInfo":
        return self._provide("create_network", execution=execution, runtime=runtime, resources=resources)

    def network_created(self, *, execution, network) -> Failures:
        return self._notify("network_created", execution=execution, network=network)

    def container_options(self, *, execution, role, runtime) -> list[Any]:
        return self._contributions("container_options", execution=execution, role=role, runtime=runtime)

    def launch_sidecar(self, *, execution, network, token, options, runtime, resources) -> "SidecarInfo":
        return self._provide("launch_sidecar", execution=execution, network=network, token=token,
                       options=options, runtime=runtime, resources=resources)

    def sidecar_started(self, *, execution, sidecar) -> Failures:
        return self._notify("sidecar_started", execution=execution, sidecar=sidecar)

    def log_sinks(self, *, execution, runtime) -> list[Any]:
        return self._contributions("log_sinks", execution=execution, runtime=runtime)

    def start_job(self, *, execution, network, launch, runtime, resources) -> "cronium.core.executor.JobHandle":
        return self._provide("start_job", execution=execution, network=network, launch=launch,
                       runtime=runtime, resources=resources)

    def job_started(self, *, execution, container_id, runtime) -> Failures:
        return self._notify("job_started", execution=execution, container_id=container_id, runtime=runtime)

    def job_finished(self, *, execution, result, runtime) -> Failures:
        return self._notify("job_finished", execution=execution, result=result, runtime=runtime)

    def cleanup(self, *, execution, result, runtime) -> Failures:
        return self._notify("cleanup", execution=execution, result=result, runtime=runtime)

    def reap_orphans(self, *, judge, dry_run, report, runtime) -> Failures:
        return self._notify("reap_orphans", judge=judge, dry_run=dry_run, report=report, runtime=runtime)
