"""Verifying the execution token (a compact JWS/JWT), without PyJWT.

The sidecar accepts exactly one algorithm, the one its settings name: `EdDSA` (an Ed25519 public
key) or `HS256` (a shared secret). PyJWT with its `cryptography` backend loads X.509, RSA, EC and
serialization code the sidecar never uses (about 3 MB of its memory); this module does the few
checks RFC 7515/7519 ask for here, in this order:

1. three base64url parts (strict alphabet), a JSON object header whose `alg` is the accepted one;
2. the signature over `header.payload` (Ed25519 verify, or a constant-time HMAC-SHA256 compare);
3. a JSON object payload with the required claims; `exp`, `nbf`, `iat` are numbers; not expired,
   not before `nbf` or `iat` (each with `leeway` seconds); the audience is `aud` or in the `aud` list.

Each failure raises `AuthenticationError` with a reason that never contains the token.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import AuthenticationError

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
#: DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) up to the 32 key bytes.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

MALFORMED = "the token is malformed"


def decode_token(token: str, algorithm: str, key: Ed25519PublicKey | bytes, audience: str, *, leeway: float,
                 required: tuple[str, ...]) -> dict[str, Any]:
    """The verified claims of `token`, or `AuthenticationError` saying why not."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError(MALFORMED)
    header = _json_object(parts[0])
    if header.get("alg") != algorithm:
        raise AuthenticationError("the token's signing algorithm is not accepted")
    if not _signature_holds(algorithm, key, f"{parts[0]}.{parts[1]}".encode("ascii"), _base64url(parts[2])):
        raise AuthenticationError("the token signature is invalid")
    claims = _json_object(parts[1])
    for claim in required:
        if claim not in claims:
            raise AuthenticationError(f"the token lacks the required claim '{claim}'")
    _check_times(claims, leeway)
    audiences = claims.get("aud")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(audiences, list) or audience not in audiences:
        raise AuthenticationError("the token is not meant for this audience")
    return claims


def _check_times(claims: dict[str, Any], leeway: float) -> None:
    now = time.time()
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise AuthenticationError(MALFORMED)
    if "exp" in claims and now > claims["exp"] + leeway:
        raise AuthenticationError("the token has expired")
    if any(name in claims and now < claims[name] - leeway for name in ("nbf", "iat")):
        raise AuthenticationError("the token is not valid yet")


def _signature_holds(algorithm: str, key: Ed25519PublicKey | bytes, signed: bytes, signature: bytes) -> bool:
    if algorithm == "HS256":
        return hmac.compare_digest(hmac.new(key, signed, hashlib.sha256).digest(), signature)
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def _base64url(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise AuthenticationError(MALFORMED)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthenticationError(MALFORMED) from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_base64url(text))
    except (ValueError, RecursionError):
        raise AuthenticationError(MALFORMED) from None
    if not isinstance(value, dict):
        raise AuthenticationError(MALFORMED)
    return value


def load_ed25519_public_pem(pem: str) -> Ed25519PublicKey | None:
    """The key of a PEM `PUBLIC KEY` block holding an Ed25519 key, or None for anything else."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0] != "-----BEGIN PUBLIC KEY-----" or lines[-1] != "-----END PUBLIC KEY-----":
        return None
    try:
        der = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        return None
    return Ed25519PublicKey.from_public_bytes(der[len(_ED25519_SPKI_PREFIX):])
