"""Token buckets for the per-execution request limit and the per-client failed-auth limit."""
from __future__ import annotations

import math
import time

from .settings import RateLimit


class TokenBucket:
    """Holds up to `burst` tokens and refills `per_minute` tokens per minute."""

    def __init__(self, limit: RateLimit) -> None:
        self.capacity = float(limit.burst)
        self.refill_per_second = limit.per_minute / 60.0
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_second)
        self.updated = now

    def wait_seconds(self) -> int:
        """Whole seconds until a token is available (0 when one is available now)."""
        self._refill()
        if self.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - self.tokens) / self.refill_per_second))

    def take(self) -> int:
        """Take a token if one is available; return the `wait_seconds` that applied."""
        wait = self.wait_seconds()
        if wait == 0:
            self.tokens -= 1
        return wait

    @property
    def is_full(self) -> bool:
        self._refill()
        return self.tokens >= self.capacity


class BucketsByClient:
    """One `TokenBucket` per client address; full (idle) buckets are dropped when the map grows."""

    MAX_CLIENTS = 1024

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.buckets: dict[str, TokenBucket] = {}

    def wait_seconds(self, client: str) -> int:
        bucket = self.buckets.get(client)
        return bucket.wait_seconds() if bucket is not None else 0

    def take(self, client: str) -> None:
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.MAX_CLIENTS:
                self.buckets = {key: b for key, b in self.buckets.items() if not b.is_full}
            bucket = self.buckets[client] = TokenBucket(self.limit)
        bucket.take()
