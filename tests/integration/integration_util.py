"""Small helpers shared by the integration tests (importable as a top-level module by pytest)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cronium_executable() -> str:
    exe = Path(sys.executable).parent / "cronium"
    return str(exe) if exe.exists() else shutil.which("cronium")


def acl_users(redis_client) -> list[str]:
    return [u.decode() if isinstance(u, bytes) else u for u in redis_client.acl_users()]


def execution_id_from(stderr: bytes) -> str:
    for line in stderr.decode().splitlines():
        if line.startswith("execution:"):
            return line.split()[1]
    raise AssertionError(f"no execution id in: {stderr.decode()}")


def acl_user_of(runtime, execution_id: str) -> str:
    """The ACL user of `execution_id`'s live attempt (one per attempt: `cronium-<exec>.<tag>`)."""
    keys = runtime.store.keys
    users = runtime.store.acl.names(keys.acl_user(execution_id) + ".")
    assert len(users) == 1, f"expected one ACL user of {execution_id}, found {users}"
    return users[0]


#: The image the test Redis of tests/docker-compose.yml is built as (it has redis-cli for the probe).
TEST_REDIS_IMAGE = "cronium-test/redis:latest"


def assert_test_redis_serves(engine, test_redis: dict) -> None:
    """What every test after a swarm module needs of the session's test Redis (a `docker swarm
    leave` on Docker 20.10 was seen to break both): it answers on its published loopback port, and a
    new container on its network resolves it by name and connects (the sidecars' path)."""
    import redis

    from cronium.core.host.services.path import probe_sidecar_path

    client = redis.Redis.from_url(test_redis["url"], socket_connect_timeout=2, socket_timeout=2)
    try:
        assert client.ping(), "the test Redis did not answer PING"
    except redis.RedisError as exc:
        raise AssertionError(f"the test Redis no longer answers on its published port ({test_redis['url'].split('@')[-1]}): {exc}") from None
    finally:
        client.close()
    alias = test_redis["sidecar_url"].split("//")[1].split(":")[0]
    probe = probe_sidecar_path(engine, image=TEST_REDIS_IMAGE, name=alias, network=test_redis["network"])
    assert probe.ok, f"sidecars can no longer reach the test Redis: {probe.detail}"
