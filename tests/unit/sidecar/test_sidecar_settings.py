"""Validation of the settings document: defaults, clear errors, and no secret in any message."""
from __future__ import annotations

import json

import pytest
from cronium.sidecar.errors import SettingsError
from cronium.sidecar.settings import RateLimit, load_settings, parse_settings

SECRET_PASSWORD = "s3cret-password"


def test_minimal_settings_get_the_documented_defaults(settings_document):
    minimal = {k: settings_document[k] for k in ("execution_id", "job_id", "redis_url", "auth")}
    settings = parse_settings(minimal)
    assert settings.namespace == "default"
    assert settings.key_prefix == "cronium:"
    assert settings.audience == "runtime-api"
    assert (settings.host, settings.port) == ("0.0.0.0", 8081)
    assert settings.rate_limit == RateLimit(per_minute=1000, burst=1000)
    assert settings.auth_failure_limit == RateLimit(per_minute=60, burst=20)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.auth.algorithm == "EdDSA"


def test_settings_are_read_from_json_text(settings_document):
    settings = load_settings(json.dumps(settings_document).encode())
    assert settings.execution_id == settings_document["execution_id"]


def test_hs256_settings_keep_the_secret_as_bytes(settings_document):
    settings = parse_settings({**settings_document, "auth": {"algorithm": "HS256", "key": "k" * 32}})
    assert settings.auth.verification_key == b"k" * 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"execution_id": "job-1"}, "settings.execution_id: must be exec_ followed by 16 lowercase hex"),
        ({"execution_id": None}, "settings.execution_id: must be a string"),
        ({"job_id": ""}, "settings.job_id: must be 1-256 characters long"),
        ({"namespace": "has space"}, "settings.namespace: must be 1-64 characters"),
        ({"redis_url": "http://example.com"}, "settings.redis_url: must be a redis://"),
        ({"redis_url": "redis://h:notaport/0"}, "settings.redis_url: is not a valid URL"),
        ({"port": 0}, "settings.port: must be at least 1 and at most 65535"),
        ({"port": "8081"}, "settings.port: must be an integer"),
        ({"port": True}, "settings.port: must be an integer"),
        ({"max_body_bytes": 0}, "settings.max_body_bytes: must be at least 1"),
        ({"rate_limit": {"per_minute": 0}}, "settings.rate_limit.per_minute: must be at least 1"),
        ({"rate_limit": {"burst": 10, "brust": 1}}, "settings.rate_limit: unknown setting(s) 'brust'"),
        ({"auth_failure_limit": []}, "settings.auth_failure_limit: must be a JSON object"),
        ({"auth": {"algorithm": "RS256", "key": "x"}}, "settings.auth.algorithm: must be one of EdDSA, HS256"),
        ({"auth": {"algorithm": "EdDSA"}}, "settings.auth.key: is required"),
        ({"auth": {"algorithm": "EdDSA", "key": "not a pem"}}, "settings.auth.key: must be an Ed25519 public key"),
        ({"auth": {"algorithm": "HS256", "key": "short"}}, "settings.auth.key: an HS256 secret needs at least 32"),
        ({"extra": 1}, "settings: unknown setting(s) 'extra'"),
        ({"listen_subnet": "10.0.0.0/28"}, "settings: give either host or listen_subnet, not both"),
    ],
)
def test_invalid_settings_name_the_field(settings_document, change, message):
    with pytest.raises(SettingsError) as raised:
        parse_settings({**settings_document, **change})
    assert message in str(raised.value)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "fd00::/64", "runtime-api", 28])
def test_listen_subnet_must_be_an_ipv4_subnet(settings_document, value):
    document = {k: v for k, v in settings_document.items() if k != "host"}
    with pytest.raises(SettingsError, match=r"settings\.listen_subnet: must be"):
        parse_settings({**document, "listen_subnet": value})


def test_listen_subnet_is_kept_as_a_network(settings_document):
    document = {k: v for k, v in settings_document.items() if k != "host"}
    assert str(parse_settings({**document, "listen_subnet": "10.9.0.5/28"}).listen_subnet) == "10.9.0.0/28"


@pytest.mark.parametrize("field", ["execution_id", "job_id", "redis_url", "auth"])
def test_required_settings(settings_document, field):
    document = dict(settings_document)
    del document[field]
    with pytest.raises(SettingsError, match=f"settings.{field}: is required"):
        parse_settings(document)


@pytest.mark.parametrize("text", [b"", b"   \n", b"{not json", b"[1, 2]"])
def test_malformed_documents_are_refused(text):
    with pytest.raises(SettingsError):
        load_settings(text)


def test_rsa_public_key_is_refused_for_eddsa(settings_document):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(SettingsError, match="Ed25519"):
        parse_settings({**settings_document, "auth": {"key": pem}})


def test_secrets_are_never_in_errors_or_repr(settings_document):
    short_secret = "tiny-secret-value"
    with pytest.raises(SettingsError) as raised:
        parse_settings({**settings_document, "auth": {"algorithm": "HS256", "key": short_secret}})
    assert short_secret not in str(raised.value)

    with pytest.raises(SettingsError) as raised:
        parse_settings({**settings_document, "redis_url": f"http://u:{SECRET_PASSWORD}@h/0"})
    assert SECRET_PASSWORD not in str(raised.value)

    settings = parse_settings(settings_document)
    assert SECRET_PASSWORD in settings.redis_url
    assert SECRET_PASSWORD not in repr(settings)
    assert "PUBLIC KEY" not in repr(settings)
