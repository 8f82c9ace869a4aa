"""Per-execution uids (`security.per_execution_uid`): one uid of a configured range per execution
attempt, claimed atomically, so that two jobs that run at the same time never share a uid.

A claim is a key `uid:<uid>` (SET NX, inside one Lua script that walks the range from a cursor)
holding who claimed it — the claim id `<execution>.<attempt tag>`, the execution, its owner and
its deadline — and `uid-of:<claim>` pointing back, so claiming again gives the same uid. Both keys
carry a TTL as a last resort; the owner releases its claim at cleanup and the reaper releases
claims whose owner died. Release compares the claim id first: a stale attempt never frees a uid
that another attempt holds now.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import UidRangeFull

if TYPE_CHECKING:
    from . import Store

_CLAIM = """
local have = redis.call('GET', KEYS[2])
if have then return tonumber(have) end
local low, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local start = redis.call('INCR', KEYS[1])
for i = 0, count - 1 do
  local uid = low + (start + i) % count
  if redis.call('SET', ARGV[1] .. uid, ARGV[4], 'NX', 'PX', ARGV[5]) then
    redis.call('SET', KEYS[2], uid, 'PX', ARGV[5])
    return uid
  end
end
return -1
"""

# KEYS[1] = uid:<uid>, KEYS[2] = uid-of:<claim>; ARGV[1] = the claim id that must hold the uid.
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if not value or cjson.decode(value)['claim'] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""


class UidClaims:
    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    def claim(self, claim: str, *, low: int, high: int, info: dict[str, Any], ttl: float) -> int:
        """The uid of `claim` (`<execution>.<attempt tag>`): the one it holds, or a free one of
        low..high claimed now. Raises UidRangeFull when none is free."""
        value = json.dumps({"claim": claim, **info}, separators=(",", ":"))
        with self.store.guard(key=self.keys.uid_of(claim)):
            uid = int(self.redis.eval(_CLAIM, 2, self.keys.uid_cursor, self.keys.uid_of(claim),
                                      self.keys.uid_claim(""), low, high - low + 1, value, int(ttl * 1000)))
        if uid < 0:
            raise UidRangeFull(low, high)
        return uid

    def release(self, claim: str, uid: int | None = None) -> bool:
        """Free the uid `claim` holds (or `uid`, when it is still held by `claim`); False when
        it held none (already released, or reaped)."""
        with self.store.guard():
            if uid is None:
                held = self.redis.get(self.keys.uid_of(claim))
                if held is None:
                    return False
                uid = int(held)
            return bool(self.redis.eval(_RELEASE, 2, self.keys.uid_claim(uid), self.keys.uid_of(claim), claim))

    def claims(self) -> list[dict[str, Any]]:
        """Every claim: uid, claim, execution, owner, deadline."""
        out = []
        prefix = self.keys.uid_claim("")
        with self.store.guard():
            for key in self.redis.scan_iter(match=self.keys.uid_claim_pattern, count=500):
                value = self.redis.get(key)
                uid = key.decode()[len(prefix):]
                if value is None or not uid.isdigit():
                    continue
                try:
                    out.append({**json.loads(value), "uid": int(uid)})
                except ValueError:
                    continue
        return sorted(out, key=lambda c: c["uid"])
