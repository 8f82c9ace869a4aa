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
