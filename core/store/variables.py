"""Variables: per namespace a values hash (`P vars:<namespace>`, JSON text), a versions hash and a
meta hash. Every write goes through the one Lua script the sidecar runs too
(`cronium.sidecar.variable_script`): versions and quotas are checked atomically, in one place."""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from cronium.sidecar.variable_script import READ, WRITE, VariableLimits, WriteOutcome, quota_message, write_args

from ..errors import NotFound, QuotaExceeded, UsageError, VersionConflict
from ..model import dumps

if TYPE_CHECKING:
    from . import Store

VARIABLE_KEY_MAX = 256
VARIABLE_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def validate_variable_key(key: str) -> str:
    if not 1 <= len(key) <= VARIABLE_KEY_MAX or not VARIABLE_KEY_RE.match(key):
        raise UsageError(f"invalid variable name {key!r}: use 1-{VARIABLE_KEY_MAX} letters, digits, '_', '.', ':' or '-'")
    return key


class Variables:
    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    def get(self, namespace: str, key: str) -> Any:
        return self.get_versioned(namespace, key)[0]

    def get_versioned(self, namespace: str, key: str) -> tuple[Any, int]:
        """(value, version); `NotFound` when the variable is not set."""
        validate_variable_key(key)
        with self.store.guard():
            raw, version = self.redis.eval(READ, 2, *self.keys.variable_hashes(namespace)[:2], key)
        if raw is None:
            raise NotFound(f"no variable '{key}' in namespace '{namespace}'")
        return json.loads(raw), int(version)

    def set(self, namespace: str, key: str, value: Any, *, limits: VariableLimits = VariableLimits(),
            expected: int | None = None) -> int:
        """Set a variable within the namespace's quotas (and only at version `expected`, if given);
        returns its new version. `QuotaExceeded` / `VersionConflict` otherwise, nothing written."""
        validate_variable_key(key)
        return self._write(namespace, "set", key, dumps(value), expected, limits).detail

    def delete(self, namespace: str, key: str) -> bool:
        validate_variable_key(key)
        return self._write(namespace, "delete", key, "", None, VariableLimits()).outcome == "ok"

    def _write(self, namespace: str, operation: str, key: str, text: str, expected: int | None,
               limits: VariableLimits) -> WriteOutcome:
        args = write_args(operation, key, text, expected, limits)
        with self.store.guard(key=self.keys.variables(namespace)):
            outcome = WriteOutcome.from_reply(self.redis.eval(WRITE, 3, *self.keys.variable_hashes(namespace), *args))
        if outcome.is_quota_refusal:
            raise QuotaExceeded(quota_message(outcome, limits, key, namespace))
        if outcome.outcome == "conflict":
            raise VersionConflict(f"variable '{key}' in namespace '{namespace}' is at version {outcome.detail}, "
                                  f"not {expected}", hint="read it again and retry with its current version")
        return outcome

    def all(self, namespace: str) -> dict[str, Any]:
        with self.store.guard():
            raw = self.redis.hgetall(self.keys.variables(namespace))
        return {k.decode(): json.loads(v) for k, v in sorted(raw.items())}
