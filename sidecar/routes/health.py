"""`GET /health`: liveness plus the store's reachability (no authentication, so bounded).

The job can call it as often as it likes: the answer about the store is cached for
`STORE_CHECK_SECONDS` (concurrent requests share one PING), and all callers together are limited
by the `health_limit` token bucket (429 with `Retry-After` past it), so no number of calls sends
more than one PING a second to the shared Redis.
"""
from __future__ import annotations

import asyncio
import time

from sanic import Blueprint, HTTPResponse, Request

from ..errors import RateLimitedError, StoreUnavailableError
from ..limits import TokenBucket
from .common import json_response

#: How long one PING's answer is reused.
STORE_CHECK_SECONDS = 1.0


class StoreCheck:
    """The store's reachability, checked at most once per `STORE_CHECK_SECONDS`."""

    def __init__(self) -> None:
        self.checked_at = float("-inf")
        self.reachable = False
        self.lock = asyncio.Lock()

    async def reachable_now(self, store) -> bool:
        async with self.lock:  # concurrent callers wait for the one PING in flight
            if time.monotonic() - self.checked_at >= STORE_CHECK_SECONDS:
                try:
                    await store.ping()
                    self.reachable = True
                except StoreUnavailableError:
                    self.reachable = False
                self.checked_at = time.monotonic()
            return self.reachable


def health_blueprint(app_ctx) -> Blueprint:
    """The route; `app_ctx` gets the health limit and the store check (one of each per app)."""
    app_ctx.health_limit = TokenBucket(app_ctx.settings.health_limit)
    app_ctx.store_check = StoreCheck()
    bp = Blueprint("health")

    @bp.get("/health", ignore_body=False)
    async def health(request: Request) -> HTTPResponse:
        """200 `{"status": "healthy", "store": "ok"}`, or 503 with status "degraded" when the store is down."""
        ctx = request.app.ctx
        wait = ctx.health_limit.take()
        if wait:
            per_minute = ctx.settings.health_limit.per_minute
            raise RateLimitedError(f"health checks are limited to {per_minute} per minute; retry after {wait} s", wait)
        if not await ctx.store_check.reachable_now(ctx.store):
            return json_response({"status": "degraded", "store": "unavailable"}, status=503)
        return json_response({"status": "healthy", "store": "ok"})

    return bp
