"""The built-in `token` plugin: a JWT scoped to one execution (cronium.plugins.token)."""
from __future__ import annotations

import dataclasses
import pickle

import jwt
import pytest
from cronium.core.model import IssuedToken, JobSpec, Secret, TokenClaims
from cronium.core.spec import resolve
from cronium.plugins.token import AUDIENCE, issue_token
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HS_SECRET = "0123456789abcdef0123456789abcdef-hs256"


def issue(rt, **spec_fields):
    spec = JobSpec(job_type="python", script=b"print(1)", job_id="job-7", namespace="team-x", **spec_fields)
    ex = resolve(spec, rt.config, owner=rt.owner).execution
    return ex, issue_token(execution=ex, runtime=rt)


def other_public_key() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_eddsa_token_verifies_with_the_returned_public_key_only(stand_in_runtime):
    rt = stand_in_runtime()
    ex, issued = issue(rt, timeout=120)
    assert isinstance(issued, IssuedToken)
    assert issued.claims.algorithm == "EdDSA"
    token, key = issued.token.reveal(), issued.verify_key.reveal()
    assert key.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in key
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience="runtime-api")
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert claims["aud"] == AUDIENCE == "runtime-api"
    assert claims["executionId"] == ex.execution_id
    assert claims["jobId"] == "job-7"
    assert claims["namespace"] == "team-x"
    assert claims["jti"] and claims["sub"].endswith(ex.execution_id)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other_public_key(), algorithms=["EdDSA"], audience="runtime-api")
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=["EdDSA"], audience="something-else")


def test_every_execution_gets_its_own_key_and_jti(stand_in_runtime):
    rt = stand_in_runtime()
    _, first = issue(rt)
    _, second = issue(rt)
    assert first.verify_key.reveal() != second.verify_key.reveal()
    assert first.claims.jti != second.claims.jti
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(second.token.reveal(), first.verify_key.reveal(), algorithms=["EdDSA"], audience="runtime-api")


def test_expiry_is_the_timeout_plus_grace(stand_in_runtime):
    rt = stand_in_runtime({"token.grace": 30})
    _, issued = issue(rt, timeout=600)
    claims = jwt.decode(issued.token.reveal(), issued.verify_key.reveal(), algorithms=["EdDSA"],
                        audience="runtime-api")
    lifetime = claims["exp"] - claims["iat"]
    setup_allowance = rt.config["sidecar.ready_timeout"] + rt.config["limits.stop_grace"] + 2
    assert 600 + 30 <= lifetime <= 600 + 30 + setup_allowance
    assert claims["nbf"] <= claims["iat"]
    assert claims["exp"] == issued.claims.expires_at
    _, longer = issue(rt, timeout=6000)
    assert longer.claims.expires_at - longer.claims.issued_at == lifetime + 5400


def test_token_is_a_secret_that_never_shows_itself(stand_in_runtime):
    rt = stand_in_runtime()
    _, issued = issue(rt)
    token, key = issued.token.reveal(), issued.verify_key.reveal()
    assert isinstance(issued.token, Secret) and isinstance(issued.verify_key, Secret)
    for text in (repr(issued.token), str(issued.token), f"{issued.token}", repr(issued), str(issued)):
        assert token not in text
        assert key not in text
    with pytest.raises(TypeError):
        pickle.dumps(issued.token)


def test_claims_hold_no_token(stand_in_runtime):
    rt = stand_in_runtime()
    _, issued = issue(rt)
    token = issued.token.reveal()
    assert isinstance(issued.claims, TokenClaims)
    values = [str(v) for v in dataclasses.astuple(issued.claims)]
    assert all(token not in v for v in values)
    assert token not in repr(issued.claims)
    assert not any(isinstance(getattr(issued.claims, f.name), Secret) for f in dataclasses.fields(issued.claims))
    signature = token.rsplit(".", 1)[1]
    assert signature not in repr(issued.claims.as_jwt_claims())


def test_hs256_mode(stand_in_runtime):
    rt = stand_in_runtime({"token.algorithm": "HS256", "token.secret": HS_SECRET})
    ex, issued = issue(rt)
    assert issued.claims.algorithm == "HS256"
    assert issued.verify_key.reveal() == HS_SECRET
    assert jwt.get_unverified_header(issued.token.reveal())["alg"] == "HS256"
    claims = jwt.decode(issued.token.reveal(), HS_SECRET, algorithms=["HS256"], audience="runtime-api")
    assert claims["executionId"] == ex.execution_id
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(issued.token.reveal(), HS_SECRET + "x", algorithms=["HS256"], audience="runtime-api")
    assert HS_SECRET not in repr(issued)


def test_secret_equality_and_hash_do_not_reveal():
    assert Secret("abc") == Secret("abc") and Secret("abc") != Secret("abd") and Secret("abc") != "abc"
    assert "abc" not in repr({"k": Secret("abc")})


# --- the lifetime counts from the release (issue 13, item 4) -------------------------------------

@pytest.mark.parametrize("algorithm", ["EdDSA", "HS256"])
def test_renew_signs_the_same_token_again_from_now(stand_in_runtime, monkeypatch, algorithm):
    """A job that waited at the set-up gates gets a token signed when it is released: same key
    (the sidecar already holds the verify key), same jti, lifetime counted from the renewal."""
    import cronium.plugins.token as token_plugin

    rt = stand_in_runtime({"token.algorithm": algorithm, "token.secret": HS_SECRET})
    monkeypatch.setattr(token_plugin.time, "time", lambda: 1_000_000.0)
    _, issued = issue(rt, timeout=60)
    monkeypatch.setattr(token_plugin.time, "time", lambda: 1_000_900.0)  # 15 minutes at the gates
    renewed = issued.renew()
    lifetime = issued.claims.expires_at - issued.claims.issued_at
    assert renewed.claims.issued_at == 1_000_900 and renewed.claims.expires_at == 1_000_900 + lifetime
    assert renewed.claims.jti == issued.claims.jti and renewed.verify_key == issued.verify_key
    claims = jwt.decode(renewed.token.reveal(), renewed.verify_key.reveal(), algorithms=[algorithm],
                        audience="runtime-api", options={"verify_exp": False, "verify_nbf": False})
    assert claims["exp"] == renewed.claims.expires_at and claims["executionId"] == issued.claims.execution_id
    assert "renew" not in repr(issued) and "PRIVATE" not in repr(issued)


def test_the_job_gets_the_token_signed_when_it_is_released():
    """The Docker executor reveals the secret env block at release, not at create: a token made on
    delivery (DeferredSecret) is signed then."""
    import socket

    from cronium.core.model import DeferredSecret
    from cronium.plugins.docker_executor import DockerJobHandle

    signed = []

    def sign() -> str:
        signed.append(True)
        return "token-signed-at-release"

    ours, theirs = socket.socketpair()
    handle = DockerJobHandle(None, "cid", ours, {"CRONIUM_EXECUTION_TOKEN": DeferredSecret(sign),
                                                 "API_KEY": Secret("k")}, b"echo hi\n")
    assert signed == []
    handle.release()
    assert signed == [True]
    received = b""
    while chunk := theirs.recv(4096):
        received += chunk
    assert received == b"CRONIUM_EXECUTION_TOKEN=token-signed-at-release\nAPI_KEY=k\n\necho hi\n"
    ours.close(), theirs.close()
