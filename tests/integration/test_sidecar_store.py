"""The sidecar's Redis store against a real Redis: exact JSON round trips, the key layout, a
least-privilege ACL user, and the 503 / degraded path when Redis cannot be reached."""
from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from urllib.parse import urlsplit

import jwt
import pytest
from cronium.sidecar.app import create_app
from cronium.sidecar.errors import StoreUnavailableError
from cronium.sidecar.settings import parse_settings
from cronium.sidecar.store import RedisStore
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ports import free_port

pytestmark = pytest.mark.integration

EXECUTION_ID = "exec_5a1dec0a5a1dec0a"
OTHER_EXECUTION_ID = "exec_0b0b0b0b0b0b0b0b"

JSON_VALUES = [
    pytest.param("plain text", id="string"),
    pytest.param("Grüße, 世界 🚀", id="unicode"),
    pytest.param(42, id="int"),
    pytest.param(-3.25, id="float"),
    pytest.param(2**70, id="big-int"),
    pytest.param(0, id="zero"),
    pytest.param(False, id="false"),
    pytest.param("", id="empty-string"),
    pytest.param(None, id="null"),
    pytest.param({"a": {"b": [1, {"c": None}]}, "d": ""}, id="nested-object"),
    pytest.param([0, False, "", None, [], {}], id="list"),
]


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_prefix(redis_client) -> str:
    """A prefix of this test's own, removed afterwards."""
    prefix = f"cronium-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    for key in redis_client.keys(f"{prefix}*"):
        redis_client.delete(key)


@pytest.fixture
def make_settings(signing_key, key_prefix, redis_url):
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

    def make(**overrides):
        return parse_settings({
            "execution_id": EXECUTION_ID, "job_id": "adhoc-store", "namespace": "team-a",
            "redis_url": redis_url, "key_prefix": key_prefix,
            "auth": {"algorithm": "EdDSA", "key": public_pem}, **overrides,
        })

    return make


@pytest.fixture
def token_for(signing_key):
    def make(execution_id: str = EXECUTION_ID) -> dict[str, str]:
        claims = {"executionId": execution_id, "aud": "runtime-api", "exp": int(time.time()) + 600}
        return {"Authorization": f"Bearer {jwt.encode(claims, signing_key, algorithm='EdDSA')}"}

    return make


@pytest.mark.parametrize("value", JSON_VALUES)
def test_variables_round_trip_every_json_value_exactly(serve, make_settings, token_for, redis_client, key_prefix,
                                                       value):
    client = serve(create_app(make_settings()))
    path = f"/executions/{EXECUTION_ID}/variables/answer"
    _, put = client.put(path, headers=token_for(), json={"value": value})
    assert put.status == 200, put.text
    stored = redis_client.hget(f"{key_prefix}vars:team-a", "answer")
    assert stored.decode() == json.dumps(value, separators=(",", ":"))
    version = put.json["version"]
    assert redis_client.hget(f"{key_prefix}vars:team-a:versions", "answer") == str(version).encode()
    _, get = client.get(path, headers=token_for())
    assert get.json == {"success": True, "data": {"key": "answer", "value": value, "version": version}}
    assert type(get.json["data"]["value"]) is type(value)


def test_variables_persist_across_executions_of_a_namespace_only(serve, make_settings, token_for):
    first = serve(create_app(make_settings()))
    _, put = first.put(f"/executions/{EXECUTION_ID}/variables/shared", headers=token_for(), json={"value": 0})
    assert put.status == 200

    next_run = serve(create_app(make_settings(execution_id=OTHER_EXECUTION_ID)))
    _, seen = next_run.get(f"/executions/{OTHER_EXECUTION_ID}/variables/shared", headers=token_for(OTHER_EXECUTION_ID))
    assert seen.json["data"]["value"] == 0

    other_namespace = serve(create_app(make_settings(execution_id=OTHER_EXECUTION_ID, namespace="team-b")))
    _, missing = other_namespace.get(f"/executions/{OTHER_EXECUTION_ID}/variables/shared",
                                     headers=token_for(OTHER_EXECUTION_ID))
    assert missing.status == 404


def test_execution_fields_use_the_documented_hashes(serve, make_settings, token_for, redis_client, key_prefix):
    record = f"{key_prefix}exec:{EXECUTION_ID}"
    context = {"executionId": EXECUTION_ID, "jobId": "adhoc-store", "jobName": "store", "jobType": "python",
               "namespace": "team-a", "startTime": "2026-01-01T00:00:00Z", "metadata": {}}
    redis_client.hset(record, mapping={"input": json.dumps({"n": 0}), "context": json.dumps(context)})
    client = serve(create_app(make_settings()))
    base = f"/executions/{EXECUTION_ID}"

    assert client.get(f"{base}/input", headers=token_for())[1].json == {"success": True, "data": {"n": 0}}
    assert client.get(f"{base}/context", headers=token_for())[1].json == {"success": True, "data": context}
    assert client.post(f"{base}/output", headers=token_for(), json={"data": ""})[1].status == 200
    assert client.post(f"{base}/condition", headers=token_for(), json={"condition": False})[1].status == 200
    # Results go to the sidecar's own hash; the record (the orchestrator's) is only read.
    assert redis_client.hgetall(f"{record}:out") == {b"output": b'""', b"condition": b"false"}
    assert sorted(redis_client.hkeys(record)) == [b"context", b"input"]


@pytest.fixture
def acl_user_url(redis_client, redis_url, key_prefix):
    """A Redis URL for a user with the rules the sidecar plugin gives a sidecar."""
    from cronium.core.store.keys import Keys
    from cronium.plugins.sidecar import acl_rules

    user = f"cronium-test-sidecar-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    redis_client.execute_command("ACL", "SETUSER", user, *acl_rules(Keys(key_prefix), EXECUTION_ID, "team-a", password))
    parts = urlsplit(redis_url)
    yield f"redis://{user}:{password}@{parts.hostname}:{parts.port}/0", user
    redis_client.execute_command("ACL", "DELUSER", user)


def test_every_route_works_with_a_least_privilege_acl_user(serve, make_settings, token_for, acl_user_url):
    client = serve(create_app(make_settings(redis_url=acl_user_url[0])))
    base = f"/executions/{EXECUTION_ID}"
    requests = [
        ("get", "/health", None, 200),
        ("get", f"{base}/input", None, 200),
        ("get", f"{base}/context", None, 200),
        ("post", f"{base}/output", {"data": [1]}, 200),
        ("post", f"{base}/condition", {"condition": True}, 200),
        ("put", f"{base}/variables/v", {"value": {"x": None}}, 200),
        ("get", f"{base}/variables/v", None, 200),
        ("post", f"{base}/variables/n/increment", {"by": 2}, 200),
        ("post", f"{base}/variables/l/append", {"value": 1}, 200),
        ("delete", f"{base}/variables/v", None, 200),
        ("get", f"{base}/variables/v", None, 404),
    ]
    for method, path, payload, expected in requests:
        kwargs = {"json": payload} if payload is not None else {}
        _, response = getattr(client, method)(path, headers=token_for(), **kwargs)
        assert response.status == expected, f"{method.upper()} {path}: {response.text}"


def test_wrong_password_is_503_with_a_clear_message(serve, make_settings, token_for, redis_url):
    parts = urlsplit(redis_url)
    client = serve(create_app(make_settings(redis_url=f"redis://:wrong@{parts.hostname}:{parts.port}/0")))
    _, response = client.get(f"/executions/{EXECUTION_ID}/input", headers=token_for())
    assert response.status == 503
    assert response.json["error"] == "store_unavailable"
    assert "credentials" in response.json["message"]


def test_unreachable_redis_gives_503_and_degraded_health(serve, make_settings, token_for):
    client = serve(create_app(make_settings(redis_url=f"redis://:pw@127.0.0.1:{free_port()}/0")))
    _, health = client.get("/health")
    assert health.status == 503
    assert health.json == {"status": "degraded", "store": "unavailable"}
    _, response = client.put(f"/executions/{EXECUTION_ID}/variables/v", headers=token_for(), json={"value": 1})
    assert response.status == 503
    assert response.json == {
        "success": False, "error": "store_unavailable",
        "message": "the store (Redis) cannot be reached; the request was not carried out, retry later",
    }


def test_redis_store_reports_an_unreachable_server_as_store_unavailable():
    async def ping_free_port():
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", "p:", EXECUTION_ID, "default")
        try:
            await store.ping()
        finally:
            await store.close()

    with pytest.raises(StoreUnavailableError):
        asyncio.run(ping_free_port())


# --- quotas, atomic updates, the connection pool ----------------------------------------------------

def _put(client, token, key, value):
    return client.put(f"/executions/{EXECUTION_ID}/variables/{key}", headers=token, json={"value": value})[1]


def test_a_value_over_the_limit_is_refused_naming_the_config_key(serve, make_settings, token_for, redis_client,
                                                                 key_prefix):
    client = serve(create_app(make_settings(variables={"max_value_bytes": 10})))
    assert _put(client, token_for(), "ok", "x" * 8).status == 200  # 10 bytes of JSON with the quotes
    response = _put(client, token_for(), "big", "x" * 9)
    assert response.status == 413
    assert response.json["error"] == "quota_exceeded"
    assert "at most 10 bytes" in response.json["message"] and "variables.max_value_bytes" in response.json["message"]
    assert redis_client.hexists(f"{key_prefix}vars:team-a", "big") == 0


def test_a_full_namespace_refuses_new_variables_but_not_updates(serve, make_settings, token_for, redis_client,
                                                                key_prefix):
    client = serve(create_app(make_settings(variables={"max_count": 2})))
    assert [_put(client, token_for(), k, 1).status for k in ("a", "b")] == [200, 200]
    refused = _put(client, token_for(), "c", 1)
    assert refused.status == 413 and "variables.max_count" in refused.json["message"]
    assert _put(client, token_for(), "a", 2).status == 200  # an existing variable may change
    assert client.delete(f"/executions/{EXECUTION_ID}/variables/b", headers=token_for())[1].status == 200
    assert _put(client, token_for(), "c", 1).status == 200
    assert sorted(redis_client.hkeys(f"{key_prefix}vars:team-a")) == [b"a", b"c"]


def test_namespace_bytes_count_what_was_there_before_the_counter(serve, make_settings, token_for, redis_client,
                                                                 key_prefix):
    values = f"{key_prefix}vars:team-a"
    redis_client.hset(values, "old", "x" * 37)  # written before quotas: 3 + 37 = 40 bytes, no counter yet
    client = serve(create_app(make_settings(variables={"max_bytes": 50})))
    refused = _put(client, token_for(), "new", "x" * 6)  # 3 + 8 more bytes: 51
    assert refused.status == 413 and "variables.max_bytes" in refused.json["message"]
    assert _put(client, token_for(), "new", "x" * 5).status == 200  # exactly 50
    assert redis_client.hget(f"{values}:meta", "bytes") == b"50"
    assert _put(client, token_for(), "old", "").status == 200  # shrinking is always allowed
    assert redis_client.hget(f"{values}:meta", "bytes") == b"15"


def test_store_quota_is_the_same_check_for_cronium_vars_set(redis_url, key_prefix):
    from cronium.core.errors import QuotaExceeded
    from cronium.core.store import Store
    from cronium.sidecar.variable_script import VariableLimits

    store = Store(redis_url, prefix=key_prefix)
    try:
        store.variables.set("team-a", "a", 1, limits=VariableLimits(max_count=1))
        with pytest.raises(QuotaExceeded, match="variables.max_count"):
            store.variables.set("team-a", "b", 1, limits=VariableLimits(max_count=1))
        assert store.variables.all("team-a") == {"a": 1}
        assert store.variables.get_versioned("team-a", "a")[1] >= 2
    finally:
        store.close()


def _hammer(client, paths_and_bodies, headers, workers: int) -> list[int]:
    """POST every (path, body) to the test client's server, up to `workers` at once; the statuses.
    (The server runs only while its client's loop runs: the requests are sent from that loop.)"""
    import httpx

    async def send_all() -> list[int]:
        limits = httpx.Limits(max_connections=workers)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{client.port}", limits=limits, timeout=60) as http:
            responses = await asyncio.gather(*(http.post(path, json=body, headers=headers)
                                               for path, body in paths_and_bodies))
        return [r.status_code for r in responses]

    return client._loop.run_until_complete(send_all())


def test_concurrent_increments_from_three_sidecars_lose_nothing(serve, make_settings, token_for, redis_client,
                                                                key_prefix):
    ids = [EXECUTION_ID, OTHER_EXECUTION_ID, "exec_0c0c0c0c0c0c0c0c"]
    clients = [serve(create_app(make_settings(execution_id=i))) for i in ids]
    statuses = []
    import threading

    def run(client, execution_id):
        path = f"/executions/{execution_id}/variables/counter/increment"
        statuses.extend(_hammer(client, [(path, {"by": 1})] * 40, token_for(execution_id), workers=8))

    threads = [threading.Thread(target=run, args=(c, i)) for c, i in zip(clients, ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 120
    assert redis_client.hget(f"{key_prefix}vars:team-a", "counter") == b"120"


def test_a_sidecar_holds_at_most_four_redis_connections(serve, make_settings, token_for, redis_client, acl_user_url):
    url, user = acl_user_url
    client = serve(create_app(make_settings(redis_url=url)))
    path = f"/executions/{EXECUTION_ID}/variables/n/increment"
    statuses = _hammer(client, [(path, {"by": 1})] * 64, token_for(), workers=32)
    assert set(statuses) == {200}
    connections = [line for line in redis_client.execute_command("CLIENT", "LIST").decode().splitlines()
                   if f" user={user} " in f" {line} "]
    assert 1 <= len(connections) <= 4


def test_non_finite_numbers_never_reach_redis(serve, make_settings, token_for, redis_client, key_prefix):
    client = serve(create_app(make_settings()))
    response = client.put(f"/executions/{EXECUTION_ID}/variables/inf", headers={**token_for(),
                          "Content-Type": "application/json"}, content=b'{"value": 1e400}')[1]
    assert response.status == 400 and "out of range" in response.json["message"]
    assert redis_client.hexists(f"{key_prefix}vars:team-a", "inf") == 0
