"""Variables: JSON values shared by the executions of one namespace, persistent across executions.

Every variable has a version (docs/runtime-api.md, "Versions"): reads return it (`version` and an
`ETag` header), writes with `If-Match: <version>` are refused with 409 when it changed. `increment`
and `append` are atomic: read, compute, write-if-unchanged, again until no other writer got in between.
"""
from __future__ import annotations

import asyncio
import json
import math
import random
import re
from typing import Any, Callable

from sanic import Blueprint, HTTPResponse, Request

from ..errors import InvalidRequestError, StoreUnavailableError, VariableNotFoundError, VersionConflictError
from .common import dumps, json_object_body, json_response, required_field, requires_token

MAX_KEY_LENGTH = 256
KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_.:-]+")
IF_MATCH = re.compile(r'\s*(?:"(\d{1,18})"|(\d{1,18}))\s*')
NUMERIC_STRING = re.compile(r"\s*-?[0-9]+(\.[0-9]+)?\s*")
#: Read-compute-write rounds of one increment/append before giving up (503, nothing written).
MAX_UPDATE_ROUNDS = 50


def variables_blueprint() -> Blueprint:
    bp = Blueprint("variables", url_prefix="/executions/<execution_id>/variables")

    @bp.get("/<key>", unquote=True, ignore_body=False)
    @requires_token
    async def get_variable(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """`{"success": true, "data": {"key", "value", "version"}}`; 404 when the variable is not set."""
        check_key(key)
        text, version = await request.app.ctx.store.read_variable(key)
        if text is None:
            raise VariableNotFoundError(_not_set(request, key))
        return _versioned(key, json.loads(text), version)

    @bp.put("/<key>", unquote=True)
    @requires_token
    async def put_variable(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """Set the variable to `{"value": <any JSON>}` (only at the version `If-Match` names, if sent)."""
        check_key(key)
        value = required_field(json_object_body(request), "value")
        version = await request.app.ctx.store.write_variable(key, dumps(value), if_match(request))
        return json_response({"success": True, "version": version}, headers=_etag(version))

    @bp.delete("/<key>", unquote=True, ignore_body=False)
    @requires_token
    async def delete_variable(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """Remove the variable; 404 when it was not set."""
        check_key(key)
        await request.app.ctx.store.delete_variable(key, if_match(request))
        return json_response({"success": True})

    @bp.post("/<key>/increment", unquote=True)
    @requires_token
    async def increment(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """Add `{"by": <number, default 1>}`; a missing or null variable counts as 0."""
        check_key(key)
        by = json_object_body(request).get("by", 1)
        if isinstance(by, bool) or not isinstance(by, (int, float)):
            raise InvalidRequestError("the field 'by' must be a number")
        value, version = await update_variable(request.app.ctx.store, key, lambda current: added(key, current, by))
        return _versioned(key, value, version)

    @bp.post("/<key>/append", unquote=True)
    @requires_token
    async def append(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """Append `{"value": <any JSON>, "separator": "<text>"}` to a list, or to a string (with the separator)."""
        check_key(key)
        body = json_object_body(request)
        item, separator = required_field(body, "value"), body.get("separator", "")
        if not isinstance(separator, str):
            raise InvalidRequestError("the field 'separator' must be a string")
        value, version = await update_variable(request.app.ctx.store, key,
                                               lambda current: appended(key, current, item, separator))
        return _versioned(key, value, version)

    return bp


async def update_variable(store, key: str, change: Callable[[Any], Any]) -> tuple[Any, int]:
    """Write `change(current value)` only if no one wrote the variable in between; retry if someone did."""
    for round_ in range(MAX_UPDATE_ROUNDS):
        text, version = await store.read_variable(key)
        value = change(None if text is None else json.loads(text))
        try:
            return value, await store.write_variable(key, dumps(value), version)
        except VersionConflictError:
            await asyncio.sleep(random.uniform(0, 0.001 * (round_ + 1)))
    raise StoreUnavailableError(f"variable '{key}' kept changing while being updated ({MAX_UPDATE_ROUNDS} "
                                "attempts); nothing was written, retry")


def added(key: str, current: Any, by: int | float) -> int | float:
    """`current + by` (null counts as 0, a numeric string as its number), or 400."""
    if current is None:
        current = 0
    elif isinstance(current, str) and NUMERIC_STRING.fullmatch(current):
        current = float(current) if "." in current else int(current)
    elif isinstance(current, bool) or not isinstance(current, (int, float)):
        raise InvalidRequestError(f"variable '{key}' holds {_json_type(current)}, not a number; cannot increment it")
    result = current + by
    if isinstance(result, float) and not math.isfinite(result):
        raise InvalidRequestError(f"incrementing variable '{key}' would leave the range of finite numbers")
    return result


def appended(key: str, current: Any, item: Any, separator: str) -> Any:
    """A list gains the item; a string gains separator + item (as JSON text unless a string); null becomes
    the item; a number or boolean becomes its JSON text + separator + item; an object is refused (400)."""
    text = item if isinstance(item, str) else dumps(item)
    if current is None:
        return item
    if isinstance(current, list):
        return [*current, item]
    if isinstance(current, str):
        return text if current == "" else current + separator + text
    if isinstance(current, dict):
        raise InvalidRequestError(f"variable '{key}' holds an object; cannot append to it")
    return dumps(current) + separator + text


def if_match(request: Request) -> int | None:
    """The version of the `If-Match` header (`3` or `"3"`), None without one."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    match = IF_MATCH.fullmatch(header)
    if not match:
        raise InvalidRequestError("the If-Match header must be a variable version (a whole number, e.g. \"3\"; "
                                  "0 = only if the variable is not set)")
    return int(match.group(1) or match.group(2))


def check_key(key: str) -> None:
    """Variable keys are 1-256 characters from A-Z a-z 0-9 _ . : -."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequestError(f"a variable key must be 1-{MAX_KEY_LENGTH} characters long")
    if not KEY_CHARACTERS.fullmatch(key):
        raise InvalidRequestError("a variable key may only contain letters, digits and _ . : -")


def _versioned(key: str, value: Any, version: int) -> HTTPResponse:
    return json_response({"success": True, "data": {"key": key, "value": value, "version": version}},
                         headers=_etag(version))


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a value")


def _not_set(request: Request, key: str) -> str:
    return f"variable '{key}' is not set in namespace '{request.app.ctx.settings.namespace}'"
