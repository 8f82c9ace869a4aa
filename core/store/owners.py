"""Owner heartbeats: `P owner:<owner>` keys that live while their process does."""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Mapping

from ..model import dumps

if TYPE_CHECKING:
    from . import Store


class Owners:
    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    def beat(self, owner: str, ttl: float, info: Mapping[str, Any] | None = None) -> None:
        with self.store.guard(key=self.keys.owner(owner)):
            self.redis.set(self.keys.owner(owner), dumps({"t": time.time(), **(info or {})}), px=int(ttl * 1000))

    def alive(self, owner: str) -> bool:
        with self.store.guard():
            return bool(self.redis.exists(self.keys.owner(owner)))

    def drop(self, owner: str) -> None:
        with self.store.guard():
            self.redis.delete(self.keys.owner(owner))

    def heartbeats(self) -> list[dict[str, Any]]:
        """Every live owner's heartbeat (workers, schedulers, `cronium run`s): owner, kind, last beat."""
        out = []
        prefix = self.keys.owner("")
        with self.store.guard():
            for key in self.redis.scan_iter(match=self.keys.owner_pattern, count=500):
                value = self.redis.get(key)
                if value is None:
                    continue
                try:
                    info = json.loads(value)
                except ValueError:
                    continue
                out.append({"owner": key.decode()[len(prefix):], **info})
        return sorted(out, key=lambda i: i["owner"])
