"""The installed `cronium` executable end to end: doctor, images, plugins, config (platform issue)."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_doctor_all_ok_when_everything_is_up(cli):
    proc = cli("doctor", "--json")
    checks = json.loads(proc.stdout)
    assert proc.returncode == 0, [c for c in checks if not c["ok"]]
    names = {c["check"] for c in checks}
    assert {"config", "plugins", "docker engine", "seccomp", "redis", "image sidecar", "image python"} <= names
    assert all(c["ok"] for c in checks)


def test_doctor_with_the_engine_unreachable_says_how_to_start_it(cli):
    proc = cli("--set", 'docker.url="unix:///run/cronium-no-such-engine.sock"', "doctor")
    out = proc.stdout.decode()
    assert proc.returncode == 1
    assert "FAIL docker engine" in out and "dockerd" in out and "make setup" in out
    assert "Traceback" not in out + proc.stderr.decode()


def test_images_build_twice_rebuilds_nothing(cli):
    first = cli("images", "build", "--quiet", timeout=1800)
    assert first.returncode == 0, first.stderr.decode()
    second = cli("images", "build", "--quiet")
    assert second.returncode == 0
    lines = second.stdout.decode().splitlines()
    assert len(lines) == 6 and all("up-to-date" in line for line in lines), lines
    listing = cli("images", "list", "--json")
    assert all(s["up_to_date"] for s in json.loads(listing.stdout))


def test_plugins_lists_builtins_and_the_installed_test_distribution(cli):
    infos = {p["name"]: p for p in json.loads(cli("plugins", "--json").stdout)}
    for name in ("token", "network", "security", "sidecar", "logs", "docker_executor"):
        assert infos[name]["builtin"] and infos[name]["distribution"] == "cronium" and infos[name]["enabled"]
    recorder = infos["recorder"]
    assert recorder["distribution"] == "cronium-test-recorder" and not recorder["builtin"]
    assert "job_finished" in recorder["hooks"]
    disabled = {p["name"]: p for p in json.loads(cli("plugins", "--json", env={"CRONIUM_DISABLE_PLUGINS": "recorder"}).stdout)}
    assert disabled["recorder"]["enabled"] is False


def test_config_show_with_a_bad_value_names_file_key_and_type(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('timeout = "abc"\n')
    proc = cli("--config", str(bad), "config", "show")
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert str(bad) in err and "'timeout'" in err and "number of seconds" in err and "'abc'" in err


def test_services_status_reports_the_external_redis_masked(cli, test_redis):
    proc = cli("services", "status", "--json")
    info = json.loads(proc.stdout)
    assert info["redis"] == "external"
    assert "cronium-test-admin" not in proc.stdout.decode()


def test_vars_set_obeys_the_namespace_quotas_and_refuses_non_finite_numbers(cli, redis_client):
    """`cronium vars set` runs the same quota script as the runtime API (issue 13, item 2)."""
    import uuid

    namespace = f"quota-{uuid.uuid4().hex[:8]}"
    with open(cli.config, "a") as config:
        config.write("[variables]\nmax_count = 1\nmax_value_bytes = 16\n")
    try:
        assert cli("vars", "set", "--namespace", namespace, "a", "1").returncode == 0
        second = cli("vars", "set", "--namespace", namespace, "b", "1")
        assert second.returncode == 1
        assert b"variables.max_count" in second.stderr and b"Traceback" not in second.stderr
        big = cli("vars", "set", "--namespace", namespace, "a", "--string", "x" * 20)
        assert big.returncode == 1 and b"variables.max_value_bytes" in big.stderr
        infinite = cli("vars", "set", "--namespace", namespace, "a", "1e400")
        assert infinite.returncode == 2 and b"finite" in infinite.stderr
        assert redis_client.hgetall(f"cronium:vars:{namespace}") == {b"a": b"1"}
    finally:
        redis_client.delete(f"cronium:vars:{namespace}", f"cronium:vars:{namespace}:versions",
                            f"cronium:vars:{namespace}:meta")
