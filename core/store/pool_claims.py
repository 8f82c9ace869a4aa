"""Pool claims: which execution a pooled object serves since it was claimed.

Pooled objects (a pre-started sidecar container) are created before any execution exists, with
neutral labels, and Docker labels cannot change later. At claim, the claiming process writes
`H pool:claims` field <object id> -> JSON `{"execution", "owner", "attempt"}` *before* the object
receives anything of the execution; the reaper and per-execution cleanup judge a claimed object by
that execution, not by its labels. The field is deleted after the object is removed (and the
reaper drops fields whose object is gone).

A claim has a `kind`: "sidecar" (a pooled sidecar, keyed by its container id; the sidecar plugin's
reaper reads and drops these) or "slot" (a pooled slot — network, sidecar and job container — keyed
by the slot's name, which every object of the slot carries as its `cronium.execution` label; the
slots plugin's reaper reads and drops these). Each reaper asks `all(kind)` for its own only.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Store


class PoolClaims:
    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    def claim(self, object_id: str, *, execution: str, owner: str, attempt: str = "", kind: str = "sidecar") -> None:
        key = self.keys.pool_claims
        claim = {"execution": execution, "owner": owner, "attempt": attempt}
        if kind != "sidecar":
            claim["kind"] = kind
        with self.store.guard(key=key):
            self.redis.hset(key, object_id, json.dumps(claim))

    def release(self, *object_ids: str) -> None:
        if object_ids:
            with self.store.guard():
                self.redis.hdel(self.keys.pool_claims, *object_ids)

    def all(self, kind: str = "sidecar") -> dict[str, dict]:
        """Every claim of `kind`: object id -> {"execution", "owner", "attempt"} (unreadable entries
        skipped; a claim without a kind is a sidecar's)."""
        with self.store.guard():
            raw = self.redis.hgetall(self.keys.pool_claims)
        claims = {}
        for object_id, value in raw.items():
            try:
                claim = json.loads(value)
            except ValueError:
                continue
            if isinstance(claim, dict) and claim.get("execution") and claim.get("kind", "sidecar") == kind:
                claims[object_id.decode()] = claim
        return claims
