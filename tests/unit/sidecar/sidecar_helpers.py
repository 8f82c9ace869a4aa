"""Helpers for the sidecar unit tests: ids, the in-memory store and hand-made tokens."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cronium.sidecar.store import conflict_message
from cronium.sidecar.errors import StoreUnavailableError, VariableNotFoundError, VersionConflictError

EXECUTION_ID = "exec_0123456789abcdef"
OTHER_EXECUTION_ID = "exec_fedcba9876543210"


class MemoryStore:
    """A `Store` in dicts, for unit tests only (versions as the Lua script hands them out; no quotas:
    those are tested against a real Redis). Set `unavailable` to make every call fail like Redis down."""

    def __init__(self) -> None:
        self.execution: dict[str, str] = {}
        self.results: dict[str, str] = {}
        self.variables: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.sequence = 1
        self.unavailable = False
        self.closed = False
        self.pings = 0

    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailableError("the store (Redis) cannot be reached")

    async def ping(self) -> None:
        self.pings += 1
        self._check()

    async def read_execution_field(self, name: str) -> str | None:
        self._check()
        return self.execution.get(name)

    async def write_result(self, name: str, json_text: str) -> None:
        self._check()
        self.results[name] = json_text

    async def read_variable(self, key: str) -> tuple[str | None, int]:
        self._check()
        return self.variables.get(key), self._version(key)

    def _version(self, key: str) -> int:
        return self.versions.get(key, 1) if key in self.variables else 0

    def _expect(self, key: str, expected: int | None) -> None:
        if expected is not None and expected != self._version(key):
            raise VersionConflictError(conflict_message(key, expected, self._version(key)), self._version(key))

    async def write_variable(self, key: str, json_text: str, expected: int | None = None) -> int:
        self._check()
        self._expect(key, expected)
        self.sequence += 1
        self.variables[key], self.versions[key] = json_text, self.sequence
        return self.sequence

    async def delete_variable(self, key: str, expected: int | None = None) -> None:
        self._check()
        self._expect(key, expected)
        if self.variables.pop(key, None) is None:
            raise VariableNotFoundError(f"variable '{key}' is not set in namespace 'default'")
        self.versions.pop(key, None)

    async def close(self) -> None:
        self.closed = True


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT built by hand, for tokens PyJWT refuses to make (alg none, HS256 with a PEM key)."""
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


def hs256_token(claims: dict[str, Any], secret: bytes) -> str:
    unsigned = handmade_token({"alg": "HS256", "typ": "JWT"}, claims).rsplit(".", 1)[0]
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"



def exec_path(suffix: str, execution_id: str = EXECUTION_ID) -> str:
    return f"/executions/{execution_id}{suffix}"


def assert_error(response, status: int, code: str) -> dict:
    """The response has the error status and the `{"success": false, "error", "message"}` shape."""
    assert response.status == status, response.text
    body = response.json
    assert body["success"] is False
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


