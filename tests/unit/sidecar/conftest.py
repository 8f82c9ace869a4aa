"""Fixtures for the sidecar unit tests: keys, tokens, settings, an in-memory store and a fresh app."""
from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cronium.sidecar.app import create_app
from cronium.sidecar.settings import parse_settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sanic import Sanic
from sanic_testing.reusable import ReusableClient
from sidecar_helpers import EXECUTION_ID, MemoryStore


@pytest.fixture(autouse=True)
def sanic_test_mode():
    Sanic.test_mode = True


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def public_pem(signing_key) -> str:
    return signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture
def settings_document(public_pem) -> dict[str, Any]:
    """A valid settings document; tests change it before building the app."""
    return {
        "execution_id": EXECUTION_ID,
        "job_id": "adhoc-hello",
        "namespace": "default",
        "redis_url": "redis://sidecar:s3cret-password@127.0.0.1:1/0",
        "key_prefix": "cronium:",
        "auth": {"algorithm": "EdDSA", "key": public_pem},
        "audience": "runtime-api",
        "host": "127.0.0.1",
        "port": 8081,
    }


@pytest.fixture
def claims() -> dict[str, Any]:
    now = int(time.time())
    return {"executionId": EXECUTION_ID, "aud": "runtime-api", "iat": now, "nbf": now, "exp": now + 600}


@pytest.fixture
def make_token(signing_key, claims):
    """make_token(**claim_overrides) -> an EdDSA token; a claim set to None is left out."""

    def make(**overrides: Any) -> str:
        payload = {**claims, **overrides}
        return jwt.encode({k: v for k, v in payload.items() if v is not None}, signing_key, algorithm="EdDSA")

    return make


@pytest.fixture
def token(make_token) -> str:
    return make_token()


@pytest.fixture
def auth(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def build_app(settings_document, store):
    """build_app(**setting_overrides) -> a fresh app on the in-memory store."""

    def build(**overrides: Any) -> Sanic:
        return create_app(parse_settings({**settings_document, **overrides}), store=store)

    return build


@pytest.fixture
def app(build_app) -> Sanic:
    return build_app()


@pytest.fixture
def client(serve, app) -> ReusableClient:
    return serve(app)
