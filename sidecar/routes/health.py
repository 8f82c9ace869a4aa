"""`GET /health`: liveness plus the store's reachability (no authentication)."""
from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from ..errors import StoreUnavailableError
from .common import json_response


def health_blueprint() -> Blueprint:
    bp = Blueprint("health")

    @bp.get("/health", ignore_body=False)
    async def health(request: Request) -> HTTPResponse:
        """200 `{"status": "healthy", "store": "ok"}`, or 503 with status "degraded" when the store is down."""
        try:
            await request.app.ctx.store.ping()
        except StoreUnavailableError:
            return json_response({"status": "degraded", "store": "unavailable"}, status=503)
        return json_response({"status": "healthy", "store": "ok"})

    return bp
