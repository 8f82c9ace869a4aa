"""Variables: one `P vars:<namespace>` hash per namespace, values as JSON text."""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, UsageError
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
        validate_variable_key(key)
        with self.store.guard():
            raw = self.redis.hget(self.keys.variables(namespace), key)
        if raw is None:
            raise NotFound(f"no variable '{key}' in namespace '{namespace}'")
        return json.loads(raw)

    def set(self, namespace: str, key: str, value: Any) -> None:
        validate_variable_key(key)
        with self.store.guard(key=self.keys.variables(namespace)):
            self.redis.hset(self.keys.variables(namespace), key, dumps(value))

    def delete(self, namespace: str, key: str) -> bool:
        validate_variable_key(key)
        with self.store.guard():
            return bool(self.redis.hdel(self.keys.variables(namespace), key))

    def all(self, namespace: str) -> dict[str, Any]:
        with self.store.guard():
            raw = self.redis.hgetall(self.keys.variables(namespace))
        return {k.decode(): json.loads(v) for k, v in sorted(raw.items())}
