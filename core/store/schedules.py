"""Schedules: the schedulers' leader lease `P scheduler:leader` (the owner id, with a TTL) and one
`P schedule:<job>` hash per scheduled job (`schedule`, `timezone`, `cursor`, `next_fire`,
`last_fire`, `last_execution`, `last_skip`, and the `missed` / `skipped` counters)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from . import Store


class Schedules:
    _RENEW = """
    -- KEYS: lease. ARGV: owner, ttl in ms. Extend the lease while it is ours.
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return 0
    """
    _RELEASE = """
    -- KEYS: lease. ARGV: owner. Delete the lease while it is ours.
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """

    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    # --- the leader lease ----------------------------------------------------------------------
    def take_lease(self, owner: str, ttl_ms: int) -> bool:
        """Renew the lease if it is `owner`'s, else take it if it is free. True when `owner` holds it."""
        key = self.keys.scheduler_lease
        with self.store.guard():
            return bool(self.redis.eval(self._RENEW, 1, key, owner, ttl_ms)) or \
                bool(self.redis.set(key, owner, nx=True, px=ttl_ms))

    def lease_holder(self) -> str | None:
        with self.store.guard():
            value = self.redis.get(self.keys.scheduler_lease)
        return value.decode() if value is not None else None

    def release_lease(self, owner: str) -> None:
        """Give the lease up, if `owner` still holds it."""
        with self.store.guard():
            self.redis.eval(self._RELEASE, 1, self.keys.scheduler_lease, owner)

    # --- per-job state -------------------------------------------------------------------------
    def state(self, job: str) -> dict[str, str]:
        """The job's schedule state ({} when it was never scheduled)."""
        with self.store.guard():
            raw = self.redis.hgetall(self.keys.schedule_state(job))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def update(self, job: str, fields: Mapping[str, str]) -> None:
        with self.store.guard():
            self.redis.hset(self.keys.schedule_state(job), mapping=dict(fields))

    def count(self, job: str, counter: str, amount: int = 1) -> None:
        """Add `amount` to one of the job's counters (`missed`, `skipped`)."""
        with self.store.guard():
            self.redis.hincrby(self.keys.schedule_state(job), counter, amount)
