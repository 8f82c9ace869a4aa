"""The dashboard's Sanic app: `create_app(config, store=...)` with one blueprint per page family.

PAGES lists the modules whose `bp` (a `sanic.Blueprint`) the app registers. Every response gets
the security headers (a Content-Security-Policy without inline script or style, no framing, no
MIME sniffing); every request passes `auth.authenticate` first. Errors become the error page,
never a traceback. Store calls are blocking (redis-py): handlers run them with `blocking()`.
"""
from __future__ import annotations

import asyncio
import importlib
import itertools
from pathlib import Path

from sanic import Sanic
from sanic.exceptions import SanicException

from cronium.core.errors import CroniumError, NotFound

from . import auth
from .render import error_page

#: Modules of this package with a `bp` blueprint, registered in this order.
PAGES = ("auth", "executions", "deployments", "fleet")

HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = Path(__file__).parent / "static"
_names = itertools.count(1)


async def blocking(func, *args, **kwargs):
    """Run a blocking call (a store query) off the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


async def _headers(request, resp):
    if resp is not None:
        for name, value in HEADERS.items():
            resp.headers.setdefault(name, value)


def _on_error(request, exc):
    if isinstance(exc, NotFound):
        return error_page(request, 404, "Not found", exc.message, exc.hint or "")
    if isinstance(exc, CroniumError):
        return error_page(request, 503 if "unavailable" in type(exc).__name__.lower() else 500,
                          "cronium error", exc.message, exc.hint or "")
    if isinstance(exc, SanicException):
        return error_page(request, exc.status_code, "Error", str(exc) or "the request failed")
    request.app.ctx.log.exception("dashboard: %s %s failed", request.method, request.path)
    return error_page(request, 500, "Internal error", "the dashboard failed on this request; see its log")


def _open_store(config):
    from cronium.core.runtime import Runtime

    return Runtime(config, read_only=True).store


def create_app(config, *, store=None, access: "auth.Access | None" = None) -> Sanic:
    """The dashboard app over `store` (default: the configured store, opened now)."""
    import logging

    app = Sanic(f"cronium_dashboard_{next(_names)}", configure_logging=False)
    app.config.update(ACCESS_LOG=False, MOTD=False, KEEP_ALIVE_TIMEOUT=5, RESPONSE_TIMEOUT=3600)
    app.ctx.config = config
    app.ctx.store = store if store is not None else _open_store(config)
    app.ctx.access = access or auth.load_access(config)
    app.ctx.log = logging.getLogger("cronium.dashboard")
    app.static("/static", STATIC, name="static")
    for name in PAGES:
        app.blueprint(importlib.import_module(f"{__package__}.{name}").bp)
    app.register_middleware(auth.authenticate, "request")
    app.register_middleware(auth.issue_cookie, "response")
    app.register_middleware(_headers, "response")
    app.error_handler.add(Exception, _on_error)
    return app
