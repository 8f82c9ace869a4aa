"""The managed Redis against the real engine, with test-only names (never the user's cronium-redis)."""
from __future__ import annotations

import json
import os
import socket
import stat
import uuid

import pytest
from cronium.core.host import images, services
from cronium.core.errors import CroniumError, ImageMissing
from ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_image(engine):
    tags = images.default_tags()
    images.build_images(engine, tags=tags, names=["redis"])
    return tags["redis"]


@pytest.fixture
def names(engine, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    kw = dict(name=f"cronium-test-redis-{suffix}", network=f"cronium-test-services-{suffix}",
              volume=f"cronium-test-redis-data-{suffix}", port=free_port(), state_dir=tmp_path / "state")
    yield kw
    services.remove_redis(engine, name=kw["name"], volume=kw["volume"], network=kw["network"])


def test_ensure_twice_reuses_one_running_container(engine, redis_image, names):
    import redis

    first = services.ensure_redis(engine, image=redis_image, **names)
    second = services.ensure_redis(engine, image=redis_image, **names)
    assert first.action == "created" and second.action == "reused"
    assert first.container_id == second.container_id
    assert engine.containers.get(names["name"]).status == "running"

    client = redis.Redis.from_url(second.url)
    try:
        assert client.ping() is True
    finally:
        client.close()
    anonymous = redis.Redis(host="127.0.0.1", port=names["port"])
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()


def test_password_file_is_private_and_secret_stays_out_of_docker(engine, redis_image, names):
    managed = services.ensure_redis(engine, image=redis_image, **names)
    path = services.password_path(names["state_dir"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    password = path.read_text().strip()
    assert password == managed.password and len(password) >= 32
    assert password not in repr(managed) and password not in managed.redacted_url
    inspect = json.dumps(engine.api.inspect_container(names["name"]))
    assert password not in inspect
    assert "cronium.managed" not in inspect


def test_container_labels_ports_network_volume(engine, redis_image, names):
    services.ensure_redis(engine, image=redis_image, **names)
    attrs = engine.api.inspect_container(names["name"])
    assert attrs["Config"]["Labels"]["cronium.service"] == "redis"
    assert "cronium.managed" not in attrs["Config"]["Labels"]
    bindings = attrs["HostConfig"]["PortBindings"]
    assert bindings == {"6379/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(names["port"])}]}
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert any(m["Type"] == "volume" and m["Name"] == names["volume"] and m["Destination"] == "/data"
               for m in attrs["Mounts"])
    assert names["network"] in attrs["NetworkSettings"]["Networks"]
    network = engine.networks.get(names["network"]).attrs
    assert network["Internal"] is True
    assert network["Labels"]["cronium.service"] == "network"
    status = services.redis_status(engine, name=names["name"], state_dir=names["state_dir"])
    assert status.running and status.healthy and status.managed
    assert status.host_port == names["port"] and status.volume == names["volume"]


def test_a_container_on_the_services_network_reaches_redis_by_name(engine, redis_image, names):
    managed = services.ensure_redis(engine, image=redis_image, **names)
    probe = engine.containers.create(
        redis_image, ["redis-cli", "-h", managed.network_host, "-p", str(managed.network_port), "ping"],
        entrypoint=[], environment={"REDISCLI_AUTH": managed.password}, network=names["network"])
    try:
        probe.start()
        probe.wait(timeout=60)
        assert probe.logs().decode().strip() == "PONG"
    finally:
        probe.remove(force=True, v=True)


def test_stop_keeps_data_and_ensure_starts_it_again(engine, redis_image, names):
    import redis

    managed = services.ensure_redis(engine, image=redis_image, **names)
    client = redis.Redis.from_url(managed.url)
    try:
        client.set("cronium-test-key", "kept")
    finally:
        client.close()
    assert services.stop_redis(engine, name=names["name"]) is True
    assert services.redis_status(engine, name=names["name"]).running is False
    assert services.stop_redis(engine, name=names["name"]) is False

    again = services.ensure_redis(engine, image=redis_image, **names)
    assert again.action == "started" and again.container_id == managed.container_id
    client = redis.Redis.from_url(again.url)
    try:
        assert client.get("cronium-test-key") == b"kept"
    finally:
        client.close()


def test_lost_password_recreates_the_container_and_keeps_the_data(engine, redis_image, names):
    import redis

    managed = services.ensure_redis(engine, image=redis_image, **names)
    client = redis.Redis.from_url(managed.url)
    try:
        client.set("cronium-test-key", "kept")
    finally:
        client.close()
    services.password_path(names["state_dir"]).unlink()
    again = services.ensure_redis(engine, image=redis_image, **names)
    assert again.action == "created" and again.password != managed.password
    client = redis.Redis.from_url(again.url)
    try:
        assert client.get("cronium-test-key") == b"kept"  # AOF in the named volume
    finally:
        client.close()


def test_foreign_container_with_the_name_is_left_alone(engine, redis_image, names):
    foreign = engine.containers.create(redis_image, name=names["name"])
    try:
        with pytest.raises(CroniumError, match="not created by cronium"):
            services.ensure_redis(engine, image=redis_image, **names)
        with pytest.raises(CroniumError, match="not created by cronium"):
            services.stop_redis(engine, name=names["name"])
        with pytest.raises(CroniumError, match="not created by cronium"):
            services.remove_redis(engine, name=names["name"])
        foreign.reload()
        assert foreign.status == "created"
    finally:
        foreign.remove(force=True, v=True)


def test_missing_image_says_to_build(engine, names):
    with pytest.raises(ImageMissing) as info:
        services.ensure_redis(engine, image=f"cronium-test/no-such-image:{uuid.uuid4().hex[:8]}", **names)
    assert "cronium images build" in str(info.value)
    assert services.password_path(names["state_dir"]).read_text().strip() not in str(info.value)


def test_port_in_use_is_a_clear_error(engine, redis_image, names):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", names["port"]))
        blocker.listen()
        with pytest.raises(CroniumError, match="already in use"):
            services.ensure_redis(engine, image=redis_image, **names)
    # nothing half-made is left behind with that name
    assert services.redis_status(engine, name=names["name"]).exists is False


def test_concurrent_ensure_gives_one_container(engine, redis_image, names):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: services.ensure_redis(engine, image=redis_image, **names), range(3)))
    assert len({r.container_id for r in results}) == 1
    assert sorted(r.action for r in results).count("created") == 1


def test_duplicate_services_networks_settle_on_the_oldest(engine, redis_image, names):
    # docker does not keep network names unique: concurrent creates on other hosts can make twins
    label = {"cronium.service": "network"}
    first = engine.networks.create(names["network"], internal=True, labels=label)
    second = engine.networks.create(names["network"], internal=True, labels=label)
    try:
        managed = services.ensure_redis(engine, image=redis_image, **names)
        left = [n.id for n in engine.networks.list(names=[names["network"]]) if n.name == names["network"]]
        assert left == [first.id]
        attrs = engine.api.inspect_container(managed.container_id)
        assert attrs["NetworkSettings"]["Networks"][names["network"]]["NetworkID"] == first.id
    finally:
        for net in (second,):
            try:
                net.remove()
            except Exception:  # noqa: BLE001
                pass
