"""Built-in plugin `token`: a JWT scoped to one execution.

Default: a fresh Ed25519 key pair per execution (EdDSA); the sidecar receives only the public key,
so a compromised sidecar cannot mint a token for anything. `token.algorithm = "HS256"` signs with
`token.secret` instead (compatibility with the original Cronium; the sidecar then holds the secret).
The private key lives only in the returned token's `renew`, which the core calls once when the job
is released (so the lifetime counts from the release, not from before the set-up gates) and then
drops.
"""
from __future__ import annotations

import secrets
import time

import jwt
from cronium.core import hookimpl
from cronium.core.model import IssuedToken, Secret, TokenClaims

AUDIENCE = "runtime-api"
ISSUER = "cronium"


def make_claims(execution, *, algorithm: str, lifetime: float, now: float | None = None,
                jti: str | None = None) -> TokenClaims:
    now = int(now if now is not None else time.time())
    return TokenClaims(
        execution_id=execution.execution_id, job_id=execution.job_id, namespace=execution.namespace,
        audience=AUDIENCE, issuer=ISSUER, subject=f"execution:{execution.execution_id}",
        jti=jti or secrets.token_hex(12), issued_at=now, not_before=now - 1, expires_at=now + int(lifetime) + 1,
        algorithm=algorithm,
    )


@hookimpl(trylast=True)
def issue_token(execution, runtime):
    cfg = runtime.config
    # Valid for setup + the job's timeout + a small grace: a copied token dies with the job.
    lifetime = cfg["sidecar.ready_timeout"] + execution.timeout + cfg["limits.stop_grace"] + cfg["token.grace"]
    if cfg["token.algorithm"] == "EdDSA":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private_key = Ed25519PrivateKey.generate()
        public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return _signed(execution, "EdDSA", lifetime, private_key, Secret(public_pem), secrets.token_hex(12))
    secret = cfg["token.secret"]
    return _signed(execution, "HS256", lifetime, secret, Secret(secret), secrets.token_hex(12))


def _signed(execution, algorithm: str, lifetime: float, key, verify_key: Secret, jti: str) -> IssuedToken:
    """A token valid from now for `lifetime` seconds, and how to sign it again later."""
    claims = make_claims(execution, algorithm=algorithm, lifetime=lifetime, jti=jti)
    token = jwt.encode(claims.as_jwt_claims(), key, algorithm=algorithm)
    return IssuedToken(token=Secret(token), verify_key=verify_key, claims=claims,
                       renew=lambda: _signed(execution, algorithm, lifetime, key, verify_key, jti))
