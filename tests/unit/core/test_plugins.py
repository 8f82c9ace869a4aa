"""Plugin discovery, validation and hook calling (cronium.core.plugins)."""
from __future__ import annotations

import importlib
import json
import sys
import textwrap
import tomllib
import uuid
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from cronium.core import hookimpl
from cronium.core.cli import cli
from cronium.core.errors import (
    HookFailures,
    MissingProvider,
    PluginLoadError,
    PluginValidationError,
)
from cronium.core.plugins import (
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    CroniumPluginManager,
    contributions,
    create_plugin_manager,
    notify,
    notify_or_raise,
    provide,
)

ROOT = Path(__file__).resolve().parents[3]

#: The provider hook each built-in plugin exists for (it may implement more hooks).
BUILTIN_MAIN_HOOK = {
    "token": "issue_token",
    "network": "create_network",
    "security": "container_options",
    "sidecar": "launch_sidecar",
    "logs": "log_sinks",
    "docker_executor": "start_job",
    "slots": "claim_slot",
    "swarm_network": "create_network",
    "swarm_sidecar": "launch_sidecar",
    "swarm_executor": "start_job",
}


def implemented_hooks(module) -> tuple[str, ...]:
    return tuple(sorted(attr for attr in dir(module) if hasattr(getattr(module, attr), "cronium_impl")))


def spec_kwargs(pm, hook: str, **values):
    """Every argument the hookspec declares (None unless given), so calls never miss one."""
    return {name: values.get(name) for name in getattr(pm.hook, hook).spec.argnames}


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """`plugin_module(source) -> module name`: a module in tmp_path, importable, forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def make(source: str) -> str:
        name = f"cronium_unit_plugin_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        created.append(name)
        return name

    yield make
    for name in created:
        sys.modules.pop(name, None)


def entry_point(name: str, module: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=module, group=ENTRY_POINT_GROUP)


def distribution(tmp_path: Path, dist_name: str, version: str, entry_points: dict[str, str]) -> metadata.Distribution:
    """A real (on-disk) distribution whose `cronium` entry points carry `.dist`."""
    info = tmp_path / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    return metadata.Distribution.at(info)


class Recorder:
    def __init__(self, calls: list, name: str):
        self.calls, self.name = calls, name

    @hookimpl
    def cleanup(self, execution, result):
        self.calls.append((self.name, execution, result))


class Raiser:
    def __init__(self, calls: list, name: str):
        self.calls, self.name = calls, name

    @hookimpl
    def cleanup(self, execution, result):
        self.calls.append((self.name, execution, result))
        raise RuntimeError(f"{self.name} is broken")


# --- built-ins are declared once -----------------------------------------------------------------

def test_pyproject_entry_points_match_builtin_plugins():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert project["entry-points"]["cronium"] == BUILTIN_PLUGINS


def test_installed_metadata_matches_builtin_plugins():
    installed = {ep.name: ep.value for ep in metadata.distribution("cronium").entry_points
                 if ep.group == ENTRY_POINT_GROUP}
    assert installed == BUILTIN_PLUGINS, "the installed metadata is stale: reinstall with `pip install -e .`"


def test_every_builtin_implements_its_hooks_trylast():
    for name, module_name in BUILTIN_PLUGINS.items():
        module = importlib.import_module(module_name)
        hooks = implemented_hooks(module)
        assert BUILTIN_MAIN_HOOK[name] in hooks
        for hook in hooks:
            opts = getattr(module, hook).cronium_impl
            assert opts["trylast"] is True, f"{module_name}.{hook} must be trylast so plugins can replace it"


# --- loading from entry points -------------------------------------------------------------------

def test_loads_builtins_and_the_installed_recorder_plugin():
    pm = create_plugin_manager(environ={})
    infos = {i.name: i for i in pm.plugin_infos()}
    cronium_version = metadata.version("cronium")
    for name, module in BUILTIN_PLUGINS.items():
        info = infos[name]
        assert info.enabled and info.builtin and info.source == "builtin" and info.path == ""
        assert info.module == module
        assert info.distribution == "cronium" and info.version == cronium_version
        assert info.hooks == implemented_hooks(importlib.import_module(module))
        assert BUILTIN_MAIN_HOOK[name] in info.hooks
        assert pm.get_plugin(name) is importlib.import_module(module)
    recorder = infos["recorder"]
    assert recorder.enabled and not recorder.builtin and recorder.source == "cronium-test-recorder"
    assert recorder.module == "cronium_test_recorder"
    assert recorder.distribution == "cronium-test-recorder"
    assert recorder.version == metadata.version("cronium-test-recorder")
    assert set(recorder.hooks) >= {"startup", "token_issued", "network_created", "sidecar_started",
                                   "job_started", "job_finished", "cleanup"}
    assert pm.get_plugin("recorder") is importlib.import_module("cronium_test_recorder")
    # built-ins are listed first, then third-party plugins
    names = [i.name for i in pm.plugin_infos()]
    assert names.index("recorder") > max(names.index(n) for n in BUILTIN_PLUGINS)
    assert infos["recorder"].as_dict()["hooks"] == list(recorder.hooks)


def test_disable_by_argument_and_by_environment():
    pm = create_plugin_manager(["network", "swarm_network"], environ={"CRONIUM_DISABLE_PLUGINS": " logs , recorder,"})
    infos = {i.name: i for i in pm.plugin_infos()}
    for name in ("network", "logs", "recorder"):
        assert pm.get_plugin(name) is None
        assert pm.is_blocked(name)
        assert infos[name].enabled is False
        assert infos[name].hooks == ()
    assert infos["token"].enabled and pm.get_plugin("token") is not None
    assert not pm.hook.create_network.get_hookimpls()
    with pytest.raises(MissingProvider) as info:
        provide(pm, "create_network", **spec_kwargs(pm, "create_network"))
    assert info.value.hook == "create_network"


def test_disabled_plugin_is_not_even_imported(plugin_module):
    module = plugin_module("raise RuntimeError('must not be imported')\n")
    pm = create_plugin_manager(["broken"], environ={}, entry_points=[entry_point("broken", module)])
    assert [(i.name, i.enabled, i.distribution) for i in pm.plugin_infos()] == [("broken", False, "unknown")]
    assert module not in sys.modules


def test_import_failure_names_entry_point_and_unknown_distribution(plugin_module):
    module = plugin_module("import this_module_does_not_exist_anywhere\n")
    with pytest.raises(PluginLoadError) as info:
        create_plugin_manager(environ={}, entry_points=[entry_point("broken", module)])
    exc = info.value
    assert exc.exit_code == 1
    assert exc.entry_point == f"broken = {module}"
    assert exc.distribution == "unknown"
    assert f"broken = {module}" in str(exc) and "'unknown'" in str(exc)
    assert "ModuleNotFoundError" in str(exc)
    assert "CRONIUM_DISABLE_PLUGINS=broken" in str(exc)


def test_import_failure_names_the_distribution(tmp_path, plugin_module):
    module = plugin_module("raise RuntimeError('boom at import')\n")
    dist = distribution(tmp_path, "cronium-broken-plugin", "2.3.4", {"broken": module})
    with pytest.raises(PluginLoadError) as info:
        create_plugin_manager(environ={}, entry_points=dist.entry_points)
    assert info.value.distribution == "cronium-broken-plugin"
    assert "cronium-broken-plugin" in str(info.value) and "boom at import" in str(info.value)


def test_distribution_and_version_come_from_the_entry_point(tmp_path, plugin_module):
    module = plugin_module("""
        from cronium.core import hookimpl

        @hookimpl
        def job_finished(execution, result):
            pass
    """)
    dist = distribution(tmp_path, "cronium-fine-plugin", "1.2.3", {"fine": module})
    pm = create_plugin_manager(environ={}, entry_points=dist.entry_points)
    (info,) = pm.plugin_infos()
    assert (info.name, info.distribution, info.version, info.hooks, info.builtin) == \
        ("fine", "cronium-fine-plugin", "1.2.3", ("job_finished",), False)


def test_misspelled_hook_names_the_plugin(plugin_module):
    module = plugin_module("""
        from cronium.core import hookimpl

        @hookimpl
        def job_finshed(execution, result):
            pass
    """)
    with pytest.raises(PluginValidationError) as info:
        create_plugin_manager(environ={}, entry_points=[entry_point("typo", module)])
    assert "plugin 'typo' (distribution 'unknown') implements unknown hook 'job_finshed'" in str(info.value)
    assert "optionalhook=True" in str(info.value)


def test_optional_unknown_hook_is_allowed(plugin_module):
    module = plugin_module("""
        from cronium.core import hookimpl

        @hookimpl(optionalhook=True)
        def some_future_hook(execution):
            pass
    """)
    pm = create_plugin_manager(environ={}, entry_points=[entry_point("future", module)])
    assert pm.get_plugin("future") is not None


def test_wrong_argument_name_names_the_plugin(plugin_module):
    module = plugin_module("""
        from cronium.core import hookimpl

        @hookimpl
        def job_finished(execution, outcome):
            pass
    """)
    with pytest.raises(PluginValidationError) as info:
        create_plugin_manager(environ={}, entry_points=[entry_point("badargs", module)])
    assert "'badargs'" in str(info.value)


# --- calling hooks -------------------------------------------------------------------------------

def test_notify_calls_every_implementation_and_returns_all_failures():
    pm = CroniumPluginManager()
    calls: list = []
    pm.register(Recorder(calls, "first"), name="first")
    pm.register(Raiser(calls, "broken-a"), name="broken-a")
    pm.register(Recorder(calls, "middle"), name="middle")
    pm.register(Raiser(calls, "broken-b"), name="broken-b")
    failures = notify(pm, "cleanup", **spec_kwargs(pm, "cleanup", execution="EX", result="RES"))
    assert sorted(name for name, _, _ in calls) == ["broken-a", "broken-b", "first", "middle"]
    assert all((execution, result) == ("EX", "RES") for _, execution, result in calls)
    assert sorted(name for name, _ in failures) == ["broken-a", "broken-b"]
    assert all(isinstance(exc, RuntimeError) for _, exc in failures)


def test_notify_follows_pluggy_call_order():
    pm = CroniumPluginManager()
    calls: list = []
    pm.register(Recorder(calls, "registered-first"), name="registered-first")
    pm.register(Recorder(calls, "registered-last"), name="registered-last")
    notify(pm, "cleanup", **spec_kwargs(pm, "cleanup"))
    pluggy_calls: list = []
    pm2 = CroniumPluginManager()
    pm2.register(Recorder(pluggy_calls, "registered-first"), name="registered-first")
    pm2.register(Recorder(pluggy_calls, "registered-last"), name="registered-last")
    pm2.hook.cleanup(**spec_kwargs(pm2, "cleanup"))
    assert [c[0] for c in calls] == [c[0] for c in pluggy_calls]


def test_notify_or_raise_reports_every_failing_plugin():
    pm = CroniumPluginManager()
    calls: list = []
    pm.register(Raiser(calls, "alpha"), name="alpha")
    pm.register(Recorder(calls, "ok"), name="ok")
    pm.register(Raiser(calls, "beta"), name="beta")
    with pytest.raises(HookFailures) as info:
        notify_or_raise(pm, "cleanup", **spec_kwargs(pm, "cleanup"))
    assert info.value.hook == "cleanup"
    assert {name for name, _ in info.value.failures} == {"alpha", "beta"}
    assert "alpha" in str(info.value) and "beta" in str(info.value) and "2 plugin(s)" in str(info.value)
    assert "ok" in [c[0] for c in calls]
    empty = CroniumPluginManager()
    notify_or_raise(empty, "cleanup", **spec_kwargs(empty, "cleanup"))  # no implementations: fine


class Contributor:
    def __init__(self, value):
        self.value = value

    @hookimpl
    def log_sinks(self, execution, runtime):
        return self.value


def test_contributions_flatten_lists_and_skip_none_in_call_order():
    pm = CroniumPluginManager()
    pm.register(Contributor(["a", "b"]), name="lists")
    pm.register(Contributor(None), name="declines")
    pm.register(Contributor(("c", None)), name="tuple")
    pm.register(Contributor("d"), name="single")
    # in pluggy's call order: the last registered plugin is called first
    assert contributions(pm, "log_sinks", **spec_kwargs(pm, "log_sinks")) == ["d", "c", "a", "b"]


def test_contribution_that_raises_names_the_plugin():
    class Broken:
        @hookimpl
        def log_sinks(self, execution, runtime):
            raise ValueError("no sink today")

    pm = CroniumPluginManager()
    pm.register(Broken(), name="broken-sinks")
    with pytest.raises(HookFailures) as info:
        contributions(pm, "log_sinks", **spec_kwargs(pm, "log_sinks"))
    assert info.value.failures[0][0] == "broken-sinks"
    assert "no sink today" in str(info.value)


class TokenProvider:
    def __init__(self, value):
        self.value = value
        self.called = False

    @hookimpl
    def issue_token(self, execution, runtime):
        self.called = True
        return self.value


def test_provide_first_result_and_missing_provider():
    pm = CroniumPluginManager()
    decliner = TokenProvider(None)
    pm.register(decliner, name="decliner")
    with pytest.raises(MissingProvider) as info:
        provide(pm, "issue_token", **spec_kwargs(pm, "issue_token"))
    assert decliner.called
    assert info.value.hook == "issue_token" and "'issue_token'" in str(info.value)
    assert "cronium plugins" in str(info.value)
    pm.register(TokenProvider("the-token"), name="answers")
    assert provide(pm, "issue_token", **spec_kwargs(pm, "issue_token")) == "the-token"


def test_third_party_firstresult_beats_trylast_builtin():
    pm = create_plugin_manager(environ={})
    third_party = TokenProvider("third-party-token")
    pm.register(third_party, name="aaa-token")
    assert provide(pm, "issue_token", **spec_kwargs(pm, "issue_token")) == "third-party-token"


def test_trylast_not_registration_order_decides():
    # The third-party plugin is registered *before* the built-in: without trylast, pluggy would
    # call the later-registered built-in first (and it would fail on these stand-in arguments).
    token_module = importlib.import_module(BUILTIN_PLUGINS["token"])
    pm = CroniumPluginManager()
    pm.register(TokenProvider("third-party-token"), name="aaa-token")
    pm.register(token_module, name="token")
    assert provide(pm, "issue_token", **spec_kwargs(pm, "issue_token")) == "third-party-token"
    assert [i.plugin_name for i in reversed(pm.hook.issue_token.get_hookimpls())] == ["aaa-token", "token"]


def test_builtin_answers_when_the_third_party_declines(stand_in_runtime):
    from cronium.core.model import IssuedToken, JobSpec
    from cronium.core.spec import resolve

    rt = stand_in_runtime()
    pm = create_plugin_manager(environ={})
    decliner = TokenProvider(None)
    pm.register(decliner, name="aaa-token")
    ex = resolve(JobSpec(job_type="python", script=b"print(1)"), rt.config, owner=rt.owner).execution
    issued = provide(pm, "issue_token", execution=ex, runtime=rt)
    assert decliner.called and isinstance(issued, IssuedToken)
    assert issued.claims.execution_id == ex.execution_id


# --- `cronium plugins` ---------------------------------------------------------------------------

def test_cli_plugins_json_lists_builtins_and_recorder():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(listed) >= set(BUILTIN_PLUGINS) | {"recorder"}
    for name in BUILTIN_PLUGINS:
        assert listed[name]["builtin"] is True and listed[name]["enabled"] is True
        assert BUILTIN_MAIN_HOOK[name] in listed[name]["hooks"]
    assert listed["recorder"]["distribution"] == "cronium-test-recorder"
    assert listed["recorder"]["builtin"] is False
    assert "cleanup" in listed["recorder"]["hooks"]


def test_cli_plugins_shows_disabled_plugins():
    result = CliRunner().invoke(cli, ["--set", 'plugins.disabled=["logs"]', "plugins", "--json"],
                                env={"CRONIUM_DISABLE_PLUGINS": "recorder"})
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["logs"]["enabled"] is False and listed["recorder"]["enabled"] is False
    assert listed["token"]["enabled"] is True
