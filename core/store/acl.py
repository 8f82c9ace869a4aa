"""Redis ACL users (the sidecar's per-execution credentials)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from . import Store


class AclUsers:
    def __init__(self, store: "Store"):
        self.store, self.redis = store, store.redis

    def create(self, user: str, rules: Sequence[str]) -> None:
        with self.store.guard():
            self.redis.execute_command("ACL", "SETUSER", user, *rules)

    def delete(self, user: str) -> bool:
        """Drop a user; False when there was none."""
        with self.store.guard():
            return bool(self.redis.execute_command("ACL", "DELUSER", user))

    def names(self, prefix: str = "") -> list[str]:
        with self.store.guard():
            users = self.redis.execute_command("ACL", "USERS")
        names = [u.decode() if isinstance(u, bytes) else str(u) for u in users]
        return sorted(n for n in names if n.startswith(prefix))
