"""Helpers shared by the route handlers: JSON in and out, and the token check."""
from __future__ import annotations

import json
import math
from functools import wraps
from typing import Any

from sanic import HTTPResponse, Request

from ..errors import InvalidRequestError

JSON_CONTENT_TYPE = "application/json"

#: `json.dumps(value, separators=(",", ":"), allow_nan=False)` without building an encoder per call.
dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    """A JSON response encoded with the standard library (exact for every JSON value).

    A plain `HTTPResponse` of the encoded bytes: Sanic's `JSONResponse` keeps the body object and
    its encoder around for later changes the sidecar never makes (about 4 % of a request's CPU).
    """
    return HTTPResponse(dumps(body).encode(), status=status, headers=headers, content_type=JSON_CONTENT_TYPE)


def success(**fields: Any) -> HTTPResponse:
    """`{"success": true, ...fields}` with status 200."""
    return json_response({"success": True, **fields})


def requires_token(handler):
    """Run the `AccessGuard` checks before the handler; the path's `execution_id`, if any, is checked."""

    @wraps(handler)
    async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        request.app.ctx.access.check(request.ip, request.headers.get("authorization"), kwargs.get("execution_id"))
        return await handler(request, *args, **kwargs)

    return guarded


def json_object_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or `InvalidRequestError` saying what is wrong."""
    if not request.body:
        raise InvalidRequestError("the request body is empty; send a JSON object")
    try:
        body = _BODY_DECODER.decode(request.body.decode(json.detect_encoding(request.body), "surrogatepass"))
    except json.JSONDecodeError as exc:
        position = f"line {exc.lineno} column {exc.colno}"
        raise InvalidRequestError(f"the request body is not valid JSON: {exc.msg} at {position}") from None
    except ValueError as exc:  # not UTF-8, NaN/Infinity, or a number too large for a double (1e400)
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError("the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return body


def required_field(body: dict[str, Any], name: str) -> Any:
    """A field of the body that must be present (it may be null)."""
    if name not in body:
        raise InvalidRequestError(f"the request body lacks the field '{name}'")
    return body[name]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range (only finite numbers are stored)")
    return value


#: What `json.loads(body, parse_constant=..., parse_float=...)` builds on every call, built once.
_BODY_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
