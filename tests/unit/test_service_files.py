"""The service set-ups shipped with cronium: compose.yaml (cronium serve + Redis) and the systemd
unit docs/cronium-serve.service. Both must name a real cronium command and keep their safeguards."""
from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from cronium.core.cli import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "docs" / "cronium-serve.service"


def compose(*args: str) -> str:
    """`docker-compose config ARGS` on compose.yaml: compose's own parser (PyYAML is not a dependency)."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (it parses compose.yaml; PyYAML is not a dependency)")
    done = subprocess.run([exe, "-f", str(COMPOSE), "config", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def service_block(normalized: str, name: str) -> list[str]:
    """The lines of `services.<name>` in compose's normalized output (keys sorted, 2-space indents)."""
    lines = normalized.splitlines()
    start = lines.index("services:")
    block: list[str] = []
    inside = False
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        if not line.startswith("   "):
            inside = line == f"  {name}:"
            continue
        if inside:
            block.append(line.strip())
    return block


def after(block: list[str], flag: str) -> str:
    return block[block.index(f"- {flag}") + 1].removeprefix("- ").strip('"')


def test_compose_file_is_valid_and_has_the_services_and_volumes():
    compose("-q")
    assert set(compose("--services").split()) == {"cronium", "redis"}
    assert set(compose("--volumes").split()) == {"redis-data", "cronium-state"}


def test_compose_redis_persists_and_never_evicts():
    redis = service_block(compose(), "redis")
    assert after(redis, "--appendonly") == "yes"
    assert after(redis, "--maxmemory-policy") == "noeviction"
    assert after(redis, "--dir") == "/data"
    assert "- redis-data:/data:rw" in redis
    assert not any(line.startswith("ports:") for line in redis), "Redis must not be published"
    assert not any("requirepass" in line for line in redis), "the password belongs in the secret file"


def test_compose_cronium_runs_serve_with_the_docker_socket():
    cronium = service_block(compose(), "cronium")
    command = cronium[cronium.index("command:") + 1]
    assert command == "- serve"
    assert "- /var/run/docker.sock:/var/run/docker.sock:rw" in cronium
    assert "- cronium-state:/var/lib/cronium:rw" in cronium
    assert "- 127.0.0.1:9464:9464/tcp" in cronium  # metrics on the host's loopback only
    text = COMPOSE.read_text()
    assert "root on this host" in text  # the comment says what the socket grants


def unit_file() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_exec_start_is_a_real_cronium_command():
    argv = shlex.split(unit_file()["Service"]["ExecStart"])
    assert Path(argv[0]).name == "cronium" and argv[1] == "serve"
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "scheduler and a worker" in result.output


def test_unit_is_hardened_and_restarts():
    service = unit_file()["Service"]
    assert service["User"] and service["User"] != "root"
    assert service["NoNewPrivileges"] == "true"
    assert service["ProtectSystem"] == "strict"
    assert "/var/lib/cronium" in service["ReadWritePaths"].split()
    assert service["Restart"] == "on-failure"
    # the state the service writes (XDG_STATE_HOME/cronium) is the writable path
    assert service["Environment"] == "XDG_STATE_HOME=/var/lib"


def test_compose_builds_cronium_serve_offline_on_the_local_job_image():
    """No registry: the serve image starts from cronium/python, its Dockerfile's default too."""
    cronium = service_block(compose(), "cronium")
    assert after_key(cronium, "BASE:") == "cronium/python:latest"
    assert cronium[cronium.index("build:") + 3] == f"context: {ROOT / 'images' / 'serve'}"
    dockerfile = (ROOT / "images" / "serve" / "Dockerfile").read_text()
    assert "ARG BASE=cronium/python:latest" in dockerfile and "pip install" not in dockerfile


def after_key(block: list[str], key: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in block if line.startswith(key))
