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
#: The only commands the sidecar needs; CLIENT SETINFO is sent on connect but its refusal is ignored.
SIDECAR_COMMANDS = ("ping", "hget", "hset", "hdel")

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
    _, get = client.get(path, headers=token_for())
    assert get.json == {"success": True, "data": {"key": "answer", "value": value}}
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


def test_execution_fields_use_the_documented_hash(serve, make_settings, token_for, redis_client, key_prefix):
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
    assert redis_client.hget(record, "output") == b'""'
    assert redis_client.hget(record, "condition") == b"false"


@pytest.fixture
def acl_user_url(redis_client, redis_url, key_prefix):
    """A Redis URL for a user limited to the sidecar's commands and its two keys."""
    user = f"cronium-test-sidecar-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    redis_client.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}",
        f"~{key_prefix}exec:{EXECUTION_ID}", f"~{key_prefix}vars:team-a", "resetchannels", "-@all",
        *(f"+{command}" for command in SIDECAR_COMMANDS),
    )
    parts = urlsplit(redis_url)
    yield f"redis://{user}:{password}@{parts.hostname}:{parts.port}/0"
    redis_client.execute_command("ACL", "DELUSER", user)


def test_every_route_works_with_a_least_privilege_acl_user(serve, make_settings, token_for, acl_user_url):
    client = serve(create_app(make_settings(redis_url=acl_user_url)))
    base = f"/executions/{EXECUTION_ID}"
    requests = [
        ("get", "/health", None, 200),
        ("get", f"{base}/input", None, 200),
        ("get", f"{base}/context", None, 200),
        ("post", f"{base}/output", {"data": [1]}, 200),
        ("post", f"{base}/condition", {"condition": True}, 200),
        ("put", f"{base}/variables/v", {"value": {"x": None}}, 200),
        ("get", f"{base}/variables/v", None, 200),
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
