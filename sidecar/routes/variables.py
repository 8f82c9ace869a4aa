"""Variables: JSON values shared by the executions of one namespace, persistent across executions."""
from __future__ import annotations

import json
import re

from sanic import Blueprint, HTTPResponse, Request

from ..errors import InvalidRequestError, VariableNotFoundError
from .common import dumps, json_object_body, required_field, requires_token, success

MAX_KEY_LENGTH = 256
KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_.:-]+")


def variables_blueprint() -> Blueprint:
    bp = Blueprint("variables", url_prefix="/executions/<execution_id>/variables")

    @bp.get("/<key>", unquote=True, ignore_body=False)
    @requires_token
    async def get_variable(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """`{"success": true, "data": {"key", "value"}}`; 404 when the variable is not set."""
        check_key(key)
        text = await request.app.ctx.store.read_variable(key)
        if text is None:
            raise VariableNotFoundError(_not_set(request, key))
        return success(data={"key": key, "value": json.loads(text)})

    @bp.put("/<key>", unquote=True)
    @requires_token
    async def put_variable(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """Set the variable to `{"value": <any JSON>}`."""
        check_key(key)
        value = required_field(json_object_body(request), "value")
        await request.app.ctx.store.write_variable(key, dumps(value))
        return success()

    @bp.delete("/<key>", unquote=True, ignore_body=False)
    @requires_token
    async def delete_variable(request: Request, execution_id: str, key: str) -> HTTPResponse:
        """Remove the variable; 404 when it was not set."""
        check_key(key)
        if not await request.app.ctx.store.delete_variable(key):
            raise VariableNotFoundError(_not_set(request, key))
        return success()

    return bp


def check_key(key: str) -> None:
    """Variable keys are 1-256 characters from A-Z a-z 0-9 _ . : -."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequestError(f"a variable key must be 1-{MAX_KEY_LENGTH} characters long")
    if not KEY_CHARACTERS.fullmatch(key):
        raise InvalidRequestError("a variable key may only contain letters, digits and _ . : -")


def _not_set(request: Request, key: str) -> str:
    return f"variable '{key}' is not set in namespace '{request.app.ctx.settings.namespace}'"
