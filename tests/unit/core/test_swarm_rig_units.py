"""Units of what surrounds the swarm executor: registry names and the registry setting, `cronium
images push` refusing clearly, doctor's swarm check, the sidecar-path probe's script."""
from __future__ import annotations

import socket
import subprocess

import pytest
from click.testing import CliRunner
from cronium.core.cli import cli
from cronium.core.errors import ConfigError
from cronium.core.host.images import registry_tag
from cronium.core.host.swarm import SwarmSummary, swarm_check


@pytest.mark.parametrize("tag, registry, expected", [
    ("cronium/python:latest", "reg.lan:5000", "reg.lan:5000/cronium/python:latest"),
    ("cronium/sidecar:mine", "10.214.0.1:5000", "10.214.0.1:5000/cronium/sidecar:mine"),
    ("old.reg:5000/cronium/python:latest", "reg.lan:5000", "reg.lan:5000/cronium/python:latest"),
    ("localhost/cronium/x:1", "reg.lan", "reg.lan/cronium/x:1"),
    ("cronium/python:latest", "", "cronium/python:latest"),
])
def test_registry_tag_renames_into_the_registry(tag, registry, expected):
    assert registry_tag(tag, registry) == expected


@pytest.mark.parametrize("value", ["http://reg:5000", "reg:5000/path", "reg lan", "reg:port", ":5000"])
def test_a_bad_registry_setting_is_refused_naming_the_key(make_config, value):
    with pytest.raises(ConfigError) as err:
        make_config({"images.registry": value})
    assert "images.registry" in str(err.value) and "registry.lan:5000" in str(err.value)


@pytest.mark.parametrize("value", ["reg.lan:5000", "10.214.0.1:5000", "registry", "[::1]:5000", ""])
def test_good_registry_settings_are_taken(make_config, value):
    assert make_config({"images.registry": value})["images.registry"] == value


def test_path_check_interval_may_be_zero_but_not_negative(make_config):
    assert make_config({"services.path_check_interval": 0})["services.path_check_interval"] == 0
    with pytest.raises(ConfigError, match="services.path_check_interval"):
        make_config({"services.path_check_interval": -1})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_without_a_registry_says_which_key_to_set(tmp_path):
    result = CliRunner().invoke(cli, ["images", "push"], env={"CRONIUM_IMAGES_REGISTRY": ""})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "images.registry is not set" in result.output and "CRONIUM_IMAGES_REGISTRY" in result.output


def test_push_to_an_unreachable_registry_names_it_and_pushes_nothing(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(cli, ["images", "push", "--registry", address])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{address} does not answer as a registry" in result.output and "Connection refused" in result.output
    assert "pushed" not in result.output


def test_push_refuses_a_registry_with_a_scheme_as_a_usage_error():
    result = CliRunner().invoke(cli, ["images", "push", "--registry", "http://reg:5000"])
    assert result.exit_code == 2 and "no scheme" in result.output


@pytest.mark.parametrize("summary, needed, ok", [
    (SwarmSummary("inactive"), False, True),
    (SwarmSummary("inactive"), True, False),
    (SwarmSummary("worker"), True, False),
    (SwarmSummary("manager", nodes={"a": "ready", "b": "ready"}), True, True),
    (SwarmSummary("manager", nodes={"a": "ready", "b": "down"}), True, False),
    (SwarmSummary("manager", nodes={"a": "ready", "b": "down"}), False, True),
    (SwarmSummary("manager", nodes={"a": "ready", "b": "ready, drain"}), True, True),
    (SwarmSummary("error", error="cannot reach the managers"), False, False),
])
def test_doctor_swarm_check(summary, needed, ok):
    passed, detail, fix = swarm_check(summary, needed=needed)
    assert passed is ok
    assert ok or fix
    if summary.role == "manager":
        assert f"{len(summary.nodes)} node(s), {summary.ready_nodes} ready" in detail
        if "down" in summary.nodes.values():
            assert "not ready: b down" in detail


def _probe_script(tmp_path, getent: str, redis_cli: str) -> int:
    """Run the probe's shell script with stand-in getent/redis-cli (exit status)."""
    from cronium.core.host.services.path import _SCRIPT

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("getent", getent), ("redis-cli", redis_cli)):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(["sh", "-c", _SCRIPT, "cronium-redis", "6379"], env=env, capture_output=True).returncode


def test_the_probe_script_tells_resolution_from_connection(tmp_path):
    from cronium.core.host.services.path import UNREACHABLE, UNRESOLVED

    assert _probe_script(tmp_path, "exit 2", "echo PONG") == UNRESOLVED
    assert _probe_script(tmp_path, "echo 1.2.3.4 x", "echo 'Could not connect: Connection refused'") == UNREACHABLE
    assert _probe_script(tmp_path, "echo 1.2.3.4 x", "echo 'NOAUTH Authentication required.'") == 0
