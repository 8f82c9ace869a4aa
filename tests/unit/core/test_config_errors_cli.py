"""Config errors through the installed `cronium` executable: `--set` is named as given, and every
bad key of a config file is reported at once, each with its file, key and fix."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def cronium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "cronium"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONIUM_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), CRONIUM_SYSTEM_CONFIG=str(tmp_path / "none.toml"),
               NO_COLOR="1")
    return subprocess.run([str(exe) if exe.exists() else shutil.which("cronium"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_set_is_attributed_to_the_set_option_as_given(tmp_path):
    shown = cronium(tmp_path, "--set", "limits.max_cpus=9", "config", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["limits.max_cpus"] == {"value": 9.0, "source": "--set limits.max_cpus=9"}
    bad = cronium(tmp_path, "--set", "limits.max_cpus=lots", "config", "show")
    assert bad.returncode == 2
    assert "error: --set limits.max_cpus=lots: key 'limits.max_cpus': bad value" in bad.stderr
    assert "--limits-max-cpus" not in bad.stderr + shown.stdout
    assert "fix: set limits.max_cpus to a number" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_every_bad_key_of_a_config_file_is_reported(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('timeout = "soon"\n[limits]\nmax_cpus = "x"\n[worker]\nconcurrenci = 3\n')
    result = cronium(tmp_path, "--config", str(config), "--set", "heartbeat.ttl=no", "config", "show")
    assert result.returncode == 2
    err = result.stderr
    assert "configuration rejected, 4 problems" in err, err
    for key in ("timeout", "limits.max_cpus", "worker.concurrenci"):
        assert f"{config}: key '{key}'" in err
    assert "--set heartbeat.ttl=no: key 'heartbeat.ttl'" in err
    assert "did you mean 'worker.concurrency'?" in err
    assert err.count("fix:") >= 5  # one per problem, and the overall one
    assert "Traceback" not in err


@pytest.mark.parametrize("text, expected", [
    ("[limits\n", "not valid TOML"),
    ("timeout = 5\n", None),
])
def test_a_single_problem_reads_as_before(tmp_path, text, expected):
    config = tmp_path / "one.toml"
    config.write_text(text)
    result = cronium(tmp_path, "--config", str(config), "config", "show")
    if expected is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2 and expected in result.stderr and "problems" not in result.stderr
