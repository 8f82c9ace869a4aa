"""Fixtures for cronium's own tests.

Integration tests run against the real Docker engine and a real Redis: pytest-docker starts the
Redis of `tests/docker-compose.yml` (built locally from cronium's base image) once per session.
The fixtures plugin authors use (`cronium_config`, `cronium_runtime`, `cronium_run`,
`docker_leftovers`, …) ship with cronium in `cronium.core.testing`; here we only tell them which
Redis to use.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from ports import free_port

TESTS = Path(__file__).parent
ADMIN_PASSWORD = "cronium-test-admin"


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    # Debian 12 packages Compose v1 only.
    return "docker-compose"


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(TESTS / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return "cronium-tests"


@pytest.fixture(scope="session")
def docker_setup():
    # Compose v1 has no --wait; readiness is checked below.
    return ["up --build -d"]


@pytest.fixture
def serve():
    """serve(app) -> a test client for a sidecar app, served on loopback until the test ends.

    `ReusableClient` keeps one server for all of a test's requests (so limits accumulate) and,
    unlike `app.test_client`, installs no exception handler of its own.
    """
    from sanic import Sanic
    from sanic_testing.reusable import ReusableClient

    Sanic.test_mode = True
    clients = []

    def start(app):
        client = ReusableClient(app, port=free_port())
        client.run()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.stop()
        client._loop.close()


@pytest.fixture(scope="session")
def docker_cleanup():
    # Not `down`: Docker 20.10 sometimes keeps counting an endpoint on a network whose containers
    # are all gone (docs/faults.md, "Engine quirks"), and `down` then fails the whole session.
    # The network is removed best-effort in pytest_sessionfinish below.
    return ["rm --stop --force -v"]


#: Set when this session started the compose project (a unit-only session must not touch the
#: network of another session that runs integration tests at the same time).
_COMPOSE_STARTED = []


def pytest_sessionfinish(session):
    if not _COMPOSE_STARTED:
        return
    try:
        import docker

        client = docker.from_env()
        found = [n for n in client.api.networks(names=["cronium-test-services"]) if n["Name"] == "cronium-test-services"]
    except Exception:
        return  # no engine (unit tests only): nothing was started
    try:
        for network in found:
            client.api.remove_network(network["Id"])
    except Exception as exc:
        attached = client.api.inspect_network("cronium-test-services").get("Containers") or {}
        if attached:  # a real leftover: fail the session
            print(f"\nerror: containers still attached to cronium-test-services: {sorted(attached)}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            print(f"\nnote: the engine still counts an endpoint on cronium-test-services with nothing attached "
                  f"(Docker engine quirk, docs/faults.md); the network stays until dockerd restarts: {exc}")
    finally:
        client.close()


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(f"AUTH {ADMIN_PASSWORD}\r\nPING\r\n".encode())
            seen = b""
            while b"PONG" not in seen:
                chunk = s.recv(64)
                if not chunk:
                    return False
                seen += chunk
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def test_redis(docker_services):
    """The session's Redis: host URL (admin), sidecar URL and the network sidecars join."""
    _COMPOSE_STARTED.append(True)
    port = docker_services.port_for("redis", 6379)
    docker_services.wait_until_responsive(check=lambda: _redis_answers(port), timeout=30.0, pause=0.1)
    return {
        "url": f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0",
        "sidecar_url": "redis://redis:6379/0",
        "network": "cronium-test-services",
    }


@pytest.fixture(scope="session")
def redis_url(test_redis) -> str:
    return test_redis["url"]


@pytest.fixture
def cronium_flags(cronium_flags) -> dict:
    """cronium.core.testing's flags, plus image tags from `CRONIUM_IMAGES_<NAME>` in the environment (a
    branch testing images built under its own tags; the fixtures' config otherwise ignores the environment)."""
    import os

    names = ("sidecar", "python", "bash", "node")
    return {**cronium_flags, **{f"images.{n}": os.environ[f"CRONIUM_IMAGES_{n.upper()}"] for n in names
                                if os.environ.get(f"CRONIUM_IMAGES_{n.upper()}")}}


@pytest.fixture(scope="session")
def cronium_redis(test_redis):
    """Tells cronium.core.testing's fixtures which Redis to use."""
    return test_redis


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
