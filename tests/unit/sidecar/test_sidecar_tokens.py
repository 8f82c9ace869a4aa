"""The sidecar's own JWT verification (`tokens`), attacked directly; PyJWT signs the test tokens."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cronium.sidecar.errors import AuthenticationError
from cronium.sidecar.tokens import decode_token, load_ed25519_public_pem
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SECRET = b"k" * 40


def claims(**changes):
    now = int(time.time())
    return {k: v for k, v in {"executionId": "exec_0123456789abcdef", "aud": "runtime-api", "iat": now,
                              "exp": now + 60, **changes}.items() if v is not None}


def decode(token, algorithm="HS256", key=SECRET):
    return decode_token(token, algorithm, key, "runtime-api", leeway=5, required=("exp", "aud", "executionId"))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_token_gives_its_claims_and_a_list_audience_is_accepted():
    assert decode(jwt.encode(claims(), SECRET, algorithm="HS256"))["executionId"] == "exec_0123456789abcdef"
    assert decode(jwt.encode(claims(aud=["other", "runtime-api"]), SECRET, algorithm="HS256"))


@pytest.mark.parametrize(("changes", "reason"), [
    ({"exp": -60}, "expired"),
    ({"nbf": 60}, "not valid yet"),
    ({"iat": 60}, "not valid yet"),
    ({"exp": "never"}, "malformed"),
    ({"exp": True}, "malformed"),
    ({"aud": "someone-else"}, "audience"),
    ({"aud": ["someone-else"]}, "audience"),
    ({"aud": None}, "required claim 'aud'"),
])
def test_claims_are_checked(changes, reason):
    """Numbers in `changes` are seconds from now (computed when the test runs, not when it is collected)."""
    now = int(time.time())
    changes = {k: now + v if isinstance(v, int) and not isinstance(v, bool) else v for k, v in changes.items()}
    with pytest.raises(AuthenticationError, match=reason):
        decode(jwt.encode(claims(**changes), SECRET, algorithm="HS256"))


def test_only_the_configured_algorithm_is_accepted():
    private = Ed25519PrivateKey.generate()
    eddsa = jwt.encode(claims(), private, algorithm="EdDSA")
    with pytest.raises(AuthenticationError, match="algorithm"):
        decode(eddsa)  # HS256 configured
    with pytest.raises(AuthenticationError, match="algorithm"):
        decode(jwt.encode(claims(), SECRET, algorithm="HS256"), "EdDSA", private.public_key())
    header = b64(json.dumps({"alg": "none"}).encode())
    with pytest.raises(AuthenticationError, match="algorithm"):
        decode(f"{header}.{b64(json.dumps(claims()).encode())}.")
    assert decode(eddsa, "EdDSA", private.public_key())["aud"] == "runtime-api"


def test_a_changed_payload_or_signature_is_refused():
    header, payload, signature = jwt.encode(claims(), SECRET, algorithm="HS256").split(".")
    forged = b64(json.dumps(claims(executionId="exec_ffffffffffffffff")).encode())
    with pytest.raises(AuthenticationError, match="signature"):
        decode(f"{header}.{forged}.{signature}")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(AuthenticationError, match="signature"):
        decode(f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30+.e30.", "W10.e30.", "e30.e30.%%"])
def test_malformed_tokens_are_refused(token):
    with pytest.raises(AuthenticationError):
        decode(token)


def test_only_an_ed25519_pem_public_key_loads():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    loaded = load_ed25519_public_pem(pem)
    assert loaded is not None and decode(jwt.encode(claims(), private, algorithm="EdDSA"), "EdDSA", loaded)
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert load_ed25519_public_pem(other) is None and load_ed25519_public_pem("not a pem") is None
