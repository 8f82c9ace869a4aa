"""Plugins from a folder, without packaging: `plugins_dir`, `CRONIUM_PLUGINS_DIR`, `--plugins-dir`
(cronium.core.plugins.create_plugin_manager, cronium.core.config, `cronium plugins`)."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner
from cronium.core.cli import cli
from cronium.core.cli.main import CroniumGroup
from cronium.core.errors import ConfigError, PluginLoadError, PluginValidationError
from cronium.core.plugins import (
    BUILTIN_PLUGINS,
    create_plugin_manager,
    notify,
    plugin_manager_for,
)
from docs_examples import python_example

FINISHED = """
    from cronium.core import hookimpl

    CALLS = []


    @hookimpl
    def job_finished(execution, result):
        CALLS.append(execution)
"""


@pytest.fixture
def plugins_dir(tmp_path):
    """`plugins_dir(**files)` -> a folder holding `<name>.py` files with the given sources."""
    folder = tmp_path / "plugins"
    folder.mkdir()

    def make(**files: str) -> Path:
        for name, source in files.items():
            (folder / f"{name}.py").write_text(textwrap.dedent(source))
        return folder

    return make


def infos_of(pm) -> dict:
    return {info.name: info for info in pm.plugin_infos()}


def test_every_py_file_is_a_plugin_named_after_it_in_file_name_order(plugins_dir):
    folder = plugins_dir(zeta=FINISHED, alpha=FINISHED)
    (folder / ".hidden.py").write_text("raise RuntimeError('hidden files are not plugins')\n")
    (folder / "notes.txt").write_text("not a plugin\n")
    pm = create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder)
    assert [(i.name, i.source, i.path, i.enabled, i.builtin) for i in pm.plugin_infos()] == [
        ("alpha", "directory", str(folder / "alpha.py"), True, False),
        ("zeta", "directory", str(folder / "zeta.py"), True, False)]
    assert infos_of(pm)["alpha"].hooks == ("job_finished",)
    # registered in file-name order, so pluggy calls the later file first
    assert [impl.plugin_name for impl in reversed(pm.hook.job_finished.get_hookimpls())] == ["zeta", "alpha"]
    assert notify(pm, "job_finished", execution="EX", result=None, runtime=None) == []
    assert pm.get_plugin("alpha").CALLS == ["EX"] and pm.get_plugin("zeta").CALLS == ["EX"]


def test_module_names_are_private_and_one_per_file_and_process(plugins_dir, tmp_path):
    folder = plugins_dir(json=FINISHED)  # a file named like a standard module shadows nothing
    other = tmp_path / "other"
    other.mkdir()
    (other / "json.py").write_text(textwrap.dedent(FINISHED))
    first = create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder).get_plugin("json")
    again = create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder).get_plugin("json")
    elsewhere = create_plugin_manager(environ={}, entry_points=[], plugins_dir=other).get_plugin("json")
    assert sys.modules["json"] is json and first is not json
    assert first.__name__.startswith("_cronium_plugins_dir_json_")
    assert again is first  # imported once per process, like an entry point's module
    assert elsewhere is not first and elsewhere.__name__ != first.__name__
    assert sys.modules[first.__name__] is first
    alike = plugins_dir(**{"a-b": FINISHED, "a_b": FINISHED})
    pm = create_plugin_manager(environ={}, entry_points=[], plugins_dir=alike)
    assert pm.get_plugin("a-b").__name__ != pm.get_plugin("a_b").__name__
    assert pm.get_plugin("a-b").__file__ == str(alike / "a-b.py")


def test_loaded_after_entry_point_plugins_and_listed_last(plugins_dir):
    pm = create_plugin_manager(environ={}, plugins_dir=plugins_dir(local=FINISHED))
    infos = pm.plugin_infos()
    assert infos[-1].name == "local" and infos[-1].source == "directory"
    sources = {i.name: i.source for i in infos}
    assert all(sources[name] == "builtin" for name in BUILTIN_PLUGINS)
    assert sources["recorder"] == "cronium-test-recorder"
    assert infos_of(pm)["local"].as_dict()["source"] == "directory"


def test_disabled_by_name_is_not_even_imported(plugins_dir):
    folder = plugins_dir(broken="raise RuntimeError('must not be imported')\n", fine=FINISHED)
    for pm in (create_plugin_manager(["broken"], environ={}, entry_points=[], plugins_dir=folder),
               create_plugin_manager(environ={"CRONIUM_DISABLE_PLUGINS": "broken"}, entry_points=[],
                                     plugins_dir=folder)):
        info = infos_of(pm)["broken"]
        assert (info.enabled, info.source, info.hooks) == (False, "directory", ())
        assert pm.get_plugin("broken") is None and pm.is_blocked("broken")
        assert pm.get_plugin("fine") is not None


def test_import_failure_names_the_file(plugins_dir):
    folder = plugins_dir(broken="import this_module_does_not_exist_anywhere\n")
    with pytest.raises(PluginLoadError) as info:
        create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder)
    exc = info.value
    assert exc.exit_code == 1 and exc.path == str(folder / "broken.py")
    assert f"plugin file '{folder / 'broken.py'}'" in str(exc) and "ModuleNotFoundError" in str(exc)
    assert "CRONIUM_DISABLE_PLUGINS=broken" in str(exc)
    assert not [name for name in sys.modules if name.startswith("_cronium_plugins_dir_broken_")]
    # fixed: it loads
    (folder / "broken.py").write_text(textwrap.dedent(FINISHED))
    assert create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder).get_plugin("broken")


def test_unknown_hook_names_the_file_and_the_hook(plugins_dir):
    folder = plugins_dir(typo="""
        from cronium.core import hookimpl

        @hookimpl
        def job_finshed(execution, result):
            pass
    """)
    with pytest.raises(PluginValidationError) as info:
        create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder)
    message = str(info.value)
    assert "'typo'" in message and str(folder / "typo.py") in message and "'job_finshed'" in message
    assert "optionalhook" in message and info.value.exit_code == 1


def test_wrong_argument_names_name_the_file(plugins_dir):
    folder = plugins_dir(badargs="""
        from cronium.core import hookimpl

        @hookimpl
        def job_finished(execution, outcome):
            pass
    """)
    with pytest.raises(PluginValidationError) as info:
        create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder)
    assert "'badargs'" in str(info.value) and str(folder / "badargs.py") in str(info.value)


def test_a_file_named_like_an_installed_plugin_is_an_error(plugins_dir):
    folder = plugins_dir(logs=FINISHED)
    with pytest.raises(PluginValidationError) as info:
        create_plugin_manager(environ={}, plugins_dir=folder)
    assert str(folder / "logs.py") in str(info.value) and "distribution 'cronium'" in str(info.value)
    assert "rename the file" in str(info.value)


def test_a_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        create_plugin_manager(environ={}, entry_points=[], plugins_dir=tmp_path / "nope")
    assert info.value.key == "plugins_dir" and info.value.exit_code == 2


# --- configuration -------------------------------------------------------------------------------

def test_plugins_dir_key_defaults_to_none_and_maps_to_the_environment(make_config, tmp_path):
    assert make_config()["plugins_dir"] == ""
    cfg = make_config(environ={"CRONIUM_PLUGINS_DIR": str(tmp_path)})
    assert cfg["plugins_dir"] == str(tmp_path) and cfg.source("plugins_dir") == "env CRONIUM_PLUGINS_DIR"


@pytest.mark.parametrize("layer", ["env", "flag", "file"])
def test_a_plugins_dir_that_does_not_exist_is_a_config_error_naming_key_and_fix(make_config, tmp_path, layer):
    missing = str(tmp_path / "missing")
    kwargs = {"env": {"environ": {"CRONIUM_PLUGINS_DIR": missing}},
              "flag": {"flags": {"plugins_dir": missing}}}.get(layer, {})
    if layer == "file":
        (tmp_path / "cronium.toml").write_text(f'plugins_dir = "{missing}"\n')
    with pytest.raises(ConfigError) as info:
        make_config(**kwargs)
    assert info.value.key == "plugins_dir" and info.value.exit_code == 2
    assert missing in str(info.value) and "fix: create it" in str(info.value)


def test_runtime_loads_the_configured_directory(make_config, plugins_dir):
    from cronium.core.runtime import Runtime

    rt = Runtime(make_config({"plugins_dir": str(plugins_dir(local=FINISHED))}))
    assert rt.pm.get_plugin("local") is not None and "local" in infos_of(rt.pm)
    assert plugin_manager_for(rt.config).get_plugin("local") is rt.pm.get_plugin("local")


# --- the CLI -------------------------------------------------------------------------------------

def test_cli_plugins_lists_directory_plugins_from_the_option_and_the_environment(plugins_dir):
    folder = plugins_dir(local=FINISHED)
    for args, env in ((["--plugins-dir", str(folder)], {}), ([], {"CRONIUM_PLUGINS_DIR": str(folder)})):
        result = CliRunner().invoke(cli, [*args, "plugins", "--json"], env=env)
        assert result.exit_code == 0, result.output
        listed = {p["name"]: p for p in json.loads(result.stdout)}
        assert listed["local"]["source"] == "directory" and listed["local"]["path"] == str(folder / "local.py")
        assert listed["local"]["hooks"] == ["job_finished"] and listed["local"]["enabled"] is True
        assert listed["token"]["source"] == "builtin"
        assert listed["recorder"]["source"] == "cronium-test-recorder"
    text = CliRunner().invoke(cli, ["--plugins-dir", str(folder), "plugins"]).stdout
    (line,) = [line for line in text.splitlines() if line.startswith("local ")]
    assert line.split() == ["local", "enabled", "directory", str(folder / "local.py")]


def test_cli_disables_a_directory_plugin_by_name(plugins_dir):
    folder = plugins_dir(local=FINISHED)
    result = CliRunner().invoke(cli, ["--plugins-dir", str(folder), "--set", 'plugins.disabled=["local"]',
                                      "plugins", "--json"])
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["local"]["enabled"] is False and listed["local"]["source"] == "directory"


def test_cli_errors_exit_with_their_code_and_name_the_file_or_key(plugins_dir, tmp_path):
    broken = plugins_dir(broken="raise RuntimeError('boom at import')\n")
    result = CliRunner().invoke(cli, ["--plugins-dir", str(broken), "plugins"])
    assert result.exit_code == 1 and str(broken / "broken.py") in result.stderr
    assert "boom at import" in result.stderr and "Traceback" not in result.stderr
    result = CliRunner().invoke(cli, ["--plugins-dir", str(tmp_path / "missing"), "plugins"])
    assert result.exit_code == 2 and "'plugins_dir'" in result.stderr and "fix:" in result.stderr


def test_cli_commands_of_a_directory_plugin_come_from_the_option(plugins_dir, monkeypatch):
    folder = plugins_dir(greeter="""
        import click
        from cronium.core import hookimpl


        @hookimpl
        def register_commands(cli):
            @cli.command("greet-from-dir")
            def greet():
                click.echo("hello from the plugins directory")
    """)
    monkeypatch.setattr(CroniumGroup, "_plugins_loaded", False)
    monkeypatch.setattr(cli, "commands", dict(cli.commands))  # forget the added command afterwards
    result = CliRunner().invoke(cli, ["--plugins-dir", str(folder), "greet-from-dir"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello from the plugins directory\n"
    assert isinstance(cli.commands["greet-from-dir"], click.Command)


# --- the documented example ----------------------------------------------------------------------

def test_the_documented_wrapper_writes_a_marker_also_when_another_plugin_failed(plugins_dir, tmp_path):
    folder = plugins_dir(job_marker=python_example("job_marker.py"), broken="""
        from cronium.core import hookimpl

        @hookimpl
        def job_finished(execution):
            raise RuntimeError("broken in job_finished")
    """)
    pm = create_plugin_manager(environ={}, entry_points=[], plugins_dir=folder)
    markers = tmp_path / "markers"
    runtime = SimpleNamespace(config=SimpleNamespace(plugin_settings=lambda name: {"dir": str(markers)}))
    for execution_id, status, exit_code in (("exec_ok", "succeeded", 0), ("exec_bad", "failed", 3)):
        failures = notify(pm, "job_finished", execution=SimpleNamespace(execution_id=execution_id),
                          result=SimpleNamespace(status=status, exit_code=exit_code), runtime=runtime)
        assert [name for name, _ in failures] == ["broken"]
    assert (markers / "exec_ok").read_text() == "succeeded 0\n"
    assert (markers / "exec_bad").read_text() == "failed 3\n"
