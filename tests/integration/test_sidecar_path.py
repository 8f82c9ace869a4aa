"""The sidecars' path to the managed Redis (by name, on the services network) breaks for real after a
swarm init + leave on Docker 20.10; `cronium doctor` sees it, `cronium services start` heals it.

Changes the engine's swarm state for a moment: run under /tmp/cronium-integration.lock (as every
integration test). The engine is left as found: the swarm is left only if this test initialised it,
and every service container it disconnected is reconnected."""
from __future__ import annotations

import json
import os
import uuid

import pytest
from cronium.core.host import services
from cronium.core.host.services.path import probe_sidecar_path
from cronium.core.testing.swarm_host import HostSwarm, swarm_state
from integration_util import TEST_REDIS_IMAGE
from ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def own_managed(tmp_path, engine):
    """A config with no redis.url (cronium manages its Redis) under test-only names."""
    suffix = uuid.uuid4().hex[:8]
    names = dict(name=f"cronium-test-redis-{suffix}", network=f"cronium-test-services-{suffix}",
                 volume=f"cronium-test-redis-data-{suffix}")
    path = tmp_path / "managed.toml"
    path.write_text(f'[services]\nredis_container = "{names["name"]}"\nnetwork = "{names["network"]}"\n'
                    f'redis_volume = "{names["volume"]}"\nredis_port = {free_port()}\n'
                    f'[logs]\ndir = "{tmp_path / "logs"}"\n')
    env = {"CRONIUM_CONFIG": str(path), "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": os.environ["HOME"]}
    yield names, env
    services.remove_redis(engine, **names)


@pytest.fixture
def swarm_cycled(engine, own_managed):
    """Init and leave a swarm (only when the engine is in none), leaving the test's own Redis broken;
    afterwards every other service container (the shared managed Redis, the tests' Redis) is
    reconnected at once."""
    if swarm_state(engine) != "inactive":
        pytest.skip("the engine is already in a swarm: a test must not leave it")
    names, _ = own_managed
    swarm = HostSwarm(engine)
    try:
        swarm.ensure()
    finally:
        swarm.restore(skip_networks=frozenset({names["network"]}))  # the test's own one stays broken
    yield


def _doctor(cli, env) -> dict:
    proc = cli("doctor", "--json", env=env)
    return {c["check"]: c for c in json.loads(proc.stdout)}


def test_doctor_sees_the_lost_name_and_services_start_heals_it(cli, engine, own_managed, tmp_path, request):
    names, env = own_managed
    started = cli("services", "start", env=env)
    assert started.returncode == 0, started.stderr.decode()
    assert b"sidecar path ok" in started.stdout
    assert _doctor(cli, env)["sidecar path"]["ok"] is True

    request.getfixturevalue("swarm_cycled")  # init + leave: the engine's DNS loses the name
    broken = _doctor(cli, env)["sidecar path"]
    assert broken["ok"] is False and "does not resolve" in broken["detail"], broken
    assert "cronium services start" in broken["fix"] and "docker network connect" in broken["fix"]
    assert _doctor(cli, env)["sidecar path"]["ok"] is False  # doctor healed nothing

    healed = cli("services", "start", env=env)
    assert healed.returncode == 0, healed.stderr.decode()
    assert b"reconnecting" in healed.stderr and b"sidecar path ok" in healed.stdout
    assert _doctor(cli, env)["sidecar path"]["ok"] is True

    script = tmp_path / "helper.py"
    script.write_text("import cronium\ncronium.set_variable('healed', 1)\nprint('got', cronium.get_variable('healed'))\n")
    run = cli("run", str(script), env=env)
    assert run.returncode == 0, run.stderr.decode()
    assert b"got 1" in run.stdout


@pytest.fixture
def published_service(engine):
    """A Redis like the tests' one (tests/docker-compose.yml): only on a bridge network labelled
    `cronium.service`, alias `redis`, port published on 127.0.0.1; removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    network = engine.networks.create(f"cronium-test-leave-{suffix}", labels={"cronium.service": "test-leave"})
    port = free_port()
    container = engine.containers.run(
        TEST_REDIS_IMAGE, ["--requirepass", "leave-test", "--save", ""], name=f"cronium-test-leave-{suffix}",
        detach=True, network=network.name, ports={"6379/tcp": ("127.0.0.1", port)},
        labels={"cronium.service": "test-leave"})
    network.disconnect(container)  # again with the alias the compose file gives it
    network.connect(container, aliases=["redis"])
    try:
        yield container, network, port
    finally:
        container.remove(force=True)
        network.remove()


def test_leaving_the_swarm_leaves_a_service_container_serving(engine, published_service):
    """A service container on a swarm services overlay (what the swarm executor does to Redis) when
    `HostSwarm.restore` leaves the swarm: it is back on its own network only, its published port
    answers and its alias resolves for a new container."""
    container, network, port = published_service
    if swarm_state(engine) != "inactive":
        pytest.skip("the engine is already in a swarm: a test must not leave it")
    assert _ping(port)
    host = HostSwarm(engine)
    try:
        host.ensure()
        overlay = engine.networks.create(f"{network.name}-overlay", driver="overlay", attachable=True, internal=True)
        overlay.connect(container, aliases=["redis"])
    finally:
        host.restore()
    assert swarm_state(engine) == "inactive"
    container.reload()
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [network.name]
    assert _ping(port), f"the published port 127.0.0.1:{port} no longer answers after the swarm was left"
    probe = probe_sidecar_path(engine, image=TEST_REDIS_IMAGE, name="redis", network=network.name)
    assert probe.ok, probe.detail


def _ping(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password="leave-test", socket_connect_timeout=2, socket_timeout=2)
    try:
        return client.ping()
    except redis.RedisError:
        return False
    finally:
        client.close()
