"""The Sanic application factory, and the one place where errors become HTTP statuses."""
from __future__ import annotations

import logging

from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException

from .auth import AccessGuard
from .errors import (
    AuthenticationError,
    ExecutionMismatchError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitedError,
    SidecarError,
    StoreUnavailableError,
    ToolFailedError,
    ToolLoadError,
    UnknownToolError,
    VariableNotFoundError,
    VersionConflictError,
)
from .routes.common import json_response
from .routes.executions import executions_blueprint
from .routes.health import health_blueprint
from .routes.tool_actions import tool_actions_blueprint
from .routes.variables import variables_blueprint
from .settings import Settings
from .store import RedisStore, Store
from .tools import ToolRegistry

APP_NAME = "cronium-sidecar"

HTTP_STATUS: dict[type[SidecarError], int] = {
    InvalidRequestError: 400,
    AuthenticationError: 401,
    ExecutionMismatchError: 403,
    VariableNotFoundError: 404,
    UnknownToolError: 404,
    VersionConflictError: 409,
    QuotaExceededError: 413,
    RateLimitedError: 429,
    ToolLoadError: 500,
    ToolFailedError: 502,
    StoreUnavailableError: 503,
}

# Errors Sanic raises itself (routing, protocol), by status: (code, message).
SANIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "the request is malformed"),
    404: ("unknown_route", "no such route; see the runtime API documentation for the routes"),
    405: ("method_not_allowed", "this route does not accept the {method} method"),
    408: ("request_timeout", "the request was not received in time"),
    413: ("payload_too_large", "the request body exceeds the limit of {max_body_bytes} bytes"),
}

log = logging.getLogger("cronium.sidecar")


def create_app(settings: Settings, *, store: Store | None = None) -> Sanic:
    """Build the runtime-API app for one execution.

    `store` replaces the Redis store (unit tests pass an in-memory one); the Redis connection pool
    is otherwise opened in `before_server_start` and closed in `before_server_stop`.
    """
    app = Sanic(APP_NAME, configure_logging=False)
    app.config.update(
        REQUEST_MAX_SIZE=settings.max_body_bytes,
        ACCESS_LOG=False,
        MOTD=False,
        NOISY_EXCEPTIONS=False,
        AUTO_EXTEND=False,
        # Errors Sanic renders itself (none reach it past `error_response`) are JSON too: the HTML
        # renderer's packages are not loaded in the sidecar process (cronium.sidecar.lean).
        FALLBACK_ERROR_FORMAT="json",
    )
    app.ctx.settings = settings
    app.ctx.access = AccessGuard(settings)
    app.ctx.tools = ToolRegistry()

    for blueprint in (health_blueprint(app.ctx), executions_blueprint(), variables_blueprint(), tool_actions_blueprint()):
        app.blueprint(blueprint)

    @app.before_server_start
    async def open_store(app: Sanic) -> None:
        app.ctx.store = store if store is not None else RedisStore(
            settings.redis_url, settings.key_prefix, settings.execution_id, settings.namespace,
            settings.variable_limits,
        )

    @app.before_server_stop
    async def close_store(app: Sanic) -> None:
        await app.ctx.store.close()

    @app.exception(Exception)
    async def error_response(request: Request, exception: Exception) -> HTTPResponse:
        return _error_response(request, exception, settings)

    return app


def _error_response(request: Request, exception: Exception, settings: Settings) -> HTTPResponse:
    """`{"success": false, "error": <code>, "message": <text>}` with the mapped status."""
    if isinstance(exception, SidecarError):
        status = next(s for kind, s in HTTP_STATUS.items() if isinstance(exception, kind))
        headers = {"Retry-After": str(exception.retry_after)} if isinstance(exception, RateLimitedError) else None
        if isinstance(exception, VersionConflictError):
            headers = {"ETag": f'"{exception.current}"'}
        return _error_body(status, exception.code, exception.message, headers)
    if isinstance(exception, SanicException):
        status = exception.status_code
        code, message = SANIC_ERRORS.get(status, ("http_error", "the request could not be served"))
        if status >= 500:
            log.error("%s in %s %s: %s", type(exception).__name__, request.method, request.uri_template, exception)
        message = message.format(method=request.method, max_body_bytes=settings.max_body_bytes)
        return _error_body(status, code, message, dict(exception.headers or {}))
    log.error("unexpected error in %s %s", request.method, request.uri_template or "(no route)", exc_info=exception)
    return _error_body(500, "internal_error", "the runtime API hit an unexpected error; see the sidecar log")


def _error_body(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    return json_response({"success": False, "error": code, "message": message}, status=status, headers=headers)
