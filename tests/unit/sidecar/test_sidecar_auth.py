"""Token checks (401), execution binding (403), the token cache and token hygiene in logs and bodies."""
from __future__ import annotations

import logging
import time

import jwt
import pytest
from cronium.sidecar import auth as auth_module
from cronium.sidecar import tokens as tokens_module
from cronium.sidecar.settings import parse_settings
from sidecar_helpers import (
    OTHER_EXECUTION_ID,
    assert_error,
    exec_path,
    handmade_token,
    hs256_token,
)

HS256_SECRET = "a-shared-secret-of-at-least-32-bytes!"


def get_input(client, headers):
    _, response = client.get(exec_path("/input"), headers=headers)
    return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token_is_accepted(client, auth):
    assert get_input(client, auth).status == 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(client, token, scheme):
    assert get_input(client, {"Authorization": f"{scheme} {token}"}).status == 200


def test_missing_header_is_401(client):
    body = assert_error(get_input(client, {}), 401, "unauthorized")
    assert "missing Authorization header" in body["message"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token {token}", "{token}"])
def test_wrong_scheme_is_401(client, token, header):
    body = assert_error(get_input(client, {"Authorization": header.format(token=token)}), 401, "unauthorized")
    assert "Bearer scheme" in body["message"]


def test_bearer_without_token_is_401(client):
    body = assert_error(get_input(client, {"Authorization": "Bearer"}), 401, "unauthorized")
    assert "no token" in body["message"]


def test_garbage_token_is_401(client):
    body = assert_error(get_input(client, bearer("not.a.jwt")), 401, "unauthorized")
    assert "malformed" in body["message"]


def test_expired_token_is_401(client, make_token):
    token = make_token(exp=int(time.time()) - 60, iat=int(time.time()) - 120, nbf=int(time.time()) - 120)
    body = assert_error(get_input(client, bearer(token)), 401, "unauthorized")
    assert "expired" in body["message"]


def test_token_valid_only_in_the_future_is_401(client, make_token):
    body = assert_error(get_input(client, bearer(make_token(nbf=int(time.time()) + 120))), 401, "unauthorized")
    assert "not valid yet" in body["message"]


def test_tampered_signature_is_401(client, token):
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"
    body = assert_error(get_input(client, bearer(tampered)), 401, "unauthorized")
    assert "signature" in body["message"]


def test_tampered_claims_are_401(client, token, claims):
    header, _, signature = token.split(".")
    forged_payload = handmade_token({}, {**claims, "exp": claims["exp"] + 10**6}).split(".")[1]
    assert_error(get_input(client, bearer(f"{header}.{forged_payload}.{signature}")), 401, "unauthorized")


def test_token_signed_by_another_key_is_401(client, claims):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    assert_error(get_input(client, bearer(stranger)), 401, "unauthorized")


def test_alg_none_is_401(client, claims):
    unsigned = handmade_token({"alg": "none", "typ": "JWT"}, claims)
    body = assert_error(get_input(client, bearer(unsigned)), 401, "unauthorized")
    assert "algorithm" in body["message"]


def test_hs256_token_signed_with_the_public_key_is_401(client, claims, public_pem):
    token = hs256_token(claims, public_pem.encode())
    body = assert_error(get_input(client, bearer(token)), 401, "unauthorized")
    assert "algorithm" in body["message"]


def test_wrong_audience_is_401(client, make_token):
    body = assert_error(get_input(client, bearer(make_token(aud="something-else"))), 401, "unauthorized")
    assert "audience" in body["message"]


@pytest.mark.parametrize("claim", ["exp", "aud", "executionId"])
def test_missing_required_claim_is_401(client, make_token, claim):
    body = assert_error(get_input(client, bearer(make_token(**{claim: None}))), 401, "unauthorized")
    assert claim in body["message"]


def test_non_string_execution_id_claim_is_401(client, make_token):
    assert_error(get_input(client, bearer(make_token(executionId=12345))), 401, "unauthorized")


def test_configured_audience_is_checked(serve, build_app, make_token):
    client = serve(build_app(audience="cronium-test"))
    assert_error(get_input(client, bearer(make_token())), 401, "unauthorized")
    assert get_input(client, bearer(make_token(aud="cronium-test"))).status == 200


def test_hs256_mode_accepts_only_hs256_tokens_with_the_secret(serve, build_app, claims, token):
    client = serve(build_app(auth={"algorithm": "HS256", "key": HS256_SECRET}))
    assert get_input(client, bearer(jwt.encode(claims, HS256_SECRET, algorithm="HS256"))).status == 200
    assert_error(get_input(client, bearer(token)), 401, "unauthorized")  # EdDSA token
    assert_error(get_input(client, bearer(hs256_token(claims, b"x" * 40))), 401, "unauthorized")


# --- 403: execution binding -------------------------------------------------------------------------

def test_token_for_another_execution_is_403(client, make_token):
    token = make_token(executionId=OTHER_EXECUTION_ID)
    _, response = client.get(exec_path("/input", OTHER_EXECUTION_ID), headers=bearer(token))
    body = assert_error(response, 403, "forbidden")
    assert "another execution" in body["message"]


def test_path_execution_id_mismatch_is_403(client, auth):
    _, response = client.get(exec_path("/input", OTHER_EXECUTION_ID), headers=auth)
    body = assert_error(response, 403, "forbidden")
    assert "path" in body["message"]


def test_tool_actions_need_a_token_for_this_execution(client, make_token):
    payload = {"tool": "echo", "action": "echo", "params": {}}
    foreign = bearer(make_token(executionId=OTHER_EXECUTION_ID))
    _, response = client.post("/tool-actions/execute", headers=foreign, json=payload)
    assert_error(response, 403, "forbidden")
    _, response = client.post("/tool-actions/execute", json=payload)
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "route"),
    [("get", "/input"), ("post", "/output"), ("post", "/condition"), ("get", "/context"),
     ("get", "/variables/x"), ("put", "/variables/x"), ("delete", "/variables/x")],
)
def test_every_execution_route_needs_a_token(client, method, route):
    _, response = getattr(client, method)(exec_path(route))
    assert_error(response, 401, "unauthorized")


# --- cache ------------------------------------------------------------------------------------------

def test_verified_tokens_are_cached(client, auth, monkeypatch):
    calls = []
    real_decode = auth_module.decode_token

    def counting_decode(*args, **kwargs):
        calls.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(auth_module, "decode_token", counting_decode)
    for _ in range(3):
        assert get_input(client, auth).status == 200
    assert len(calls) == 1


def _swap_signature_byte(token: str) -> str:
    head, _, signature = token.rpartition(".")
    first = "B" if signature[0] == "A" else "A"
    return f"{head}.{first}{signature[1:]}"


def test_a_tampered_token_is_refused_after_the_genuine_one_was_cached(client, auth, token, make_token, claims):
    """The cache holds the exact header text: a cached token's claims under another signature, or its
    signature under other claims, are verified in full and refused."""
    assert get_input(client, auth).status == 200  # now cached
    forged_claims = make_token(executionId=OTHER_EXECUTION_ID).rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]
    longer_life = make_token(exp=claims["exp"] + 3600).rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]
    for forged in (_swap_signature_byte(token), forged_claims, longer_life):
        body = assert_error(get_input(client, bearer(forged)), 401, "unauthorized")
        assert "signature" in body["message"]
    assert get_input(client, auth).status == 200


def test_a_cached_token_is_refused_once_it_expires(client, make_token, monkeypatch):
    now = time.time()
    token = make_token(iat=int(now) - 10, nbf=int(now) - 10, exp=int(now) + 30)
    assert get_input(client, bearer(token)).status == 200  # now cached
    later = type("Clock", (), {"time": staticmethod(lambda: now + 30 + auth_module.LEEWAY_SECONDS + 1)})
    monkeypatch.setattr(auth_module, "time", later)
    monkeypatch.setattr(tokens_module, "time", later)
    body = assert_error(get_input(client, bearer(token)), 401, "unauthorized")
    assert "expired" in body["message"]


def test_the_token_cache_is_bounded(settings_document, make_token):
    verifier = auth_module.TokenVerifier(parse_settings(settings_document))
    for i in range(verifier.MAX_CACHED_TOKENS + 40):
        verifier.verify("Bearer " + make_token(jti=f"t{i}"))
    assert 0 < len(verifier._verified) <= verifier.MAX_CACHED_TOKENS


# --- token hygiene ----------------------------------------------------------------------------------

def test_token_text_never_appears_in_logs_or_error_bodies(client, make_token, token, claims, caplog):
    caplog.set_level(logging.DEBUG)
    expired = make_token(exp=int(time.time()) - 60, iat=int(time.time()) - 120, nbf=int(time.time()) - 120)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[::-1]}"
    foreign = make_token(executionId=OTHER_EXECUTION_ID)
    wrong_aud = make_token(aud="nope")
    secrets = [token, expired, tampered, foreign, wrong_aud]
    bodies = [
        get_input(client, bearer(expired)).text,
        get_input(client, bearer(tampered)).text,
        get_input(client, bearer(foreign)).text,
        get_input(client, bearer(wrong_aud)).text,
        get_input(client, {"Authorization": f"Token {token}"}).text,
        # a client that put its token where the execution id belongs (the original's W1 bug)
        client.get(f"/executions/{token}/input", headers=bearer(token))[1].text,
        client.get(f"/executions/{token}/nowhere", headers=bearer(token))[1].text,
    ]
    # Everything logged in the process except by the test's own HTTP client (which logs its URLs).
    server_log = "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))
    )
    assert "authentication failed" in server_log
    for secret in secrets:
        for part in [secret, *secret.split(".")[1:]]:
            assert part not in server_log
            assert all(part not in body for body in bodies)
    assert all('"success":false' in body for body in bodies)
