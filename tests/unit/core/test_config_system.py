"""The system config layer (/etc/cronium/config.toml, moved for tests by CRONIUM_SYSTEM_CONFIG)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from cronium.core.cli import cli
from cronium.core.config import SYSTEM_CONFIG_PATH, load_config, system_config_path, unknown_env
from cronium.core.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def system_file(tmp_path):
    # tests/unit/conftest.py points CRONIUM_SYSTEM_CONFIG at this (not yet existing) file
    return Path(os.environ["CRONIUM_SYSTEM_CONFIG"])


def test_system_path_defaults_to_etc(monkeypatch):
    monkeypatch.delenv("CRONIUM_SYSTEM_CONFIG")
    assert system_config_path() == Path("/etc/cronium/config.toml") == Path(SYSTEM_CONFIG_PATH)


def test_system_layer_sits_between_defaults_and_user(tmp_path, system_file):
    write(system_file, 'namespace = "from-system"\ntimeout = 77\n[sidecar]\npids = 21\n')
    upath = write(tmp_path / "xdg-config" / "cronium" / "config.toml", 'timeout = 88\n')
    fpath = write(tmp_path / "given.toml", "[sidecar]\npids = 22\n")
    cfg = load_config(config_file=fpath, environ={}, cwd=tmp_path)
    source = f"system ({system_file})"
    assert cfg["namespace"] == "from-system" and cfg.source("namespace") == source  # over defaults
    assert cfg["timeout"] == 88 and cfg.source("timeout") == str(upath)  # user over system
    assert cfg["sidecar.pids"] == 22 and cfg.source("sidecar.pids") == str(fpath)  # --config over system
    env = load_config(environ={"CRONIUM_NAMESPACE": "from-env"}, flags={"timeout": 5}, cwd=tmp_path)
    assert env["namespace"] == "from-env" and env["timeout"] == 5  # env and flags over system


def test_cwd_cronium_toml_is_above_system(tmp_path, system_file):
    write(system_file, 'namespace = "from-system"\n')
    write(tmp_path / "cronium.toml", 'namespace = "from-cwd"\n')
    assert load_config(environ={}, cwd=tmp_path)["namespace"] == "from-cwd"


def test_hermetic_callers_skip_the_system_file(tmp_path, system_file):
    write(system_file, 'namespace = "from-system"\n')
    assert load_config(environ={}, use_user_config=False, cwd=tmp_path)["namespace"] == "default"


def test_missing_system_file_is_not_an_error(tmp_path, system_file):
    assert not system_file.exists()
    assert load_config(environ={}, cwd=tmp_path).source("namespace") == "defaults"


def test_bad_system_file_error_names_the_system_layer(tmp_path, system_file):
    write(system_file, "tiemout = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, cwd=tmp_path)
    msg = str(info.value)
    assert f"system ({system_file})" in msg and "tiemout" in msg and "timeout" in msg


def test_config_show_names_the_system_source(tmp_path, system_file):
    write(system_file, 'namespace = "from-system"\n')
    result = CliRunner().invoke(cli, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["namespace"]
    assert shown == {"value": "from-system", "source": f"system ({system_file})"}


def test_system_config_variable_is_not_reported_as_unknown(system_file):
    assert "CRONIUM_SYSTEM_CONFIG" not in unknown_env({"CRONIUM_SYSTEM_CONFIG": str(system_file)})
