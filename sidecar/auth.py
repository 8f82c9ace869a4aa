"""Token verification and the access checks every authenticated route goes through.

Nothing here logs or returns the token text: messages describe what is wrong, never the token.
"""
from __future__ import annotations

import logging
import time

from .errors import AuthenticationError, ExecutionMismatchError, RateLimitedError
from .limits import BucketsByClient, TokenBucket
from .settings import Settings
from .tokens import decode_token

log = logging.getLogger("cronium.sidecar.auth")

LEEWAY_SECONDS = 5
REQUIRED_CLAIMS = ("exp", "aud", "executionId")

class TokenVerifier:
    """Verifies `Authorization: Bearer <jwt>` headers and caches verified ones until their token expires.

    The cache is keyed by the header's exact text: a request repeating a verified header costs one
    dict lookup and one clock read; any other text (a changed byte of the signature or the claims)
    misses and is verified in full. At most `MAX_CACHED_TOKENS` entries (expired ones dropped first).
    """

    MAX_CACHED_TOKENS = 256

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.auth.algorithm
        self.key = settings.auth.verification_key
        self.audience = settings.audience
        self._verified: dict[str, tuple[float, str]] = {}  # Authorization header -> (exp + leeway, executionId)

    def verify(self, authorization: str | None) -> str:
        """Return the token's execution id, or raise `AuthenticationError`."""
        cached = self._verified.get(authorization) if authorization else None
        if cached is not None:
            if time.time() < cached[0]:
                return cached[1]
            del self._verified[authorization]
        claims = self._decode(_bearer_token(authorization))
        execution_id = claims["executionId"]
        if not isinstance(execution_id, str):
            raise AuthenticationError("the token's executionId claim must be a string")
        self._remember(authorization, float(claims["exp"]) + LEEWAY_SECONDS, execution_id)
        return execution_id

    def _decode(self, token: str) -> dict:
        return decode_token(token, self.algorithm, self.key, self.audience, leeway=LEEWAY_SECONDS,
                            required=REQUIRED_CLAIMS)

    def _remember(self, authorization: str, valid_until: float, execution_id: str) -> None:
        if len(self._verified) >= self.MAX_CACHED_TOKENS:
            now = time.time()
            self._verified = {k: entry for k, entry in self._verified.items() if entry[0] > now}
            if len(self._verified) >= self.MAX_CACHED_TOKENS:
                self._verified.clear()
        self._verified[authorization] = (valid_until, execution_id)


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("the Authorization header must use the Bearer scheme")
    token = token.strip()
    if not token:
        raise AuthenticationError("the Authorization header has no token after 'Bearer'")
    return token


class AccessGuard:
    """The checks in front of every authenticated route, in order:

    1. the client has not exceeded the failed-authentication limit (429, before looking at the token);
    2. the token is valid (401; a failure counts against the client);
    3. the token is for the execution this sidecar serves (403);
    4. the execution's request rate limit (429);
    5. the execution id in the path, if any, is the token's (403).
    """

    def __init__(self, settings: Settings) -> None:
        self.execution_id = settings.execution_id
        self.verifier = TokenVerifier(settings)
        self.failures = BucketsByClient(settings.auth_failure_limit)
        self.requests = TokenBucket(settings.rate_limit)
        self.requests_per_minute = settings.rate_limit.per_minute

    def check(self, client: str, authorization: str | None, path_execution_id: str | None) -> None:
        wait = self.failures.wait_seconds(client)
        if wait:
            raise RateLimitedError(f"too many failed authentication attempts; retry after {wait} s", wait)
        try:
            token_execution_id = self.verifier.verify(authorization)
        except AuthenticationError as exc:
            self.failures.take(client)
            log.warning("authentication failed for a request from %s: %s", client, exc.message)
            raise
        if token_execution_id != self.execution_id:
            raise ExecutionMismatchError("the token is for another execution than the one this runtime API serves")
        wait = self.requests.take()
        if wait:
            raise RateLimitedError(
                f"rate limit of {self.requests_per_minute} requests per minute exceeded; retry after {wait} s", wait
            )
        if path_execution_id is not None and path_execution_id != token_execution_id:
            # The path id is not echoed: a misconfigured client may have put its token there.
            raise ExecutionMismatchError(
                f"the execution id in the path does not match the token's execution id ({token_execution_id})"
            )
