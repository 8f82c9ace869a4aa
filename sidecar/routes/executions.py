"""The execution's own record: input, output, condition and context."""
from __future__ import annotations

import json
from typing import Any

from sanic import Blueprint, HTTPResponse, Request

from ..errors import InvalidRequestError
from ..settings import Settings
from .common import dumps, json_object_body, required_field, requires_token, success


def executions_blueprint() -> Blueprint:
    bp = Blueprint("executions", url_prefix="/executions/<execution_id>")

    @bp.get("/input", ignore_body=False)
    @requires_token
    async def get_input(request: Request, execution_id: str) -> HTTPResponse:
        """`{"success": true, "data": <input or null>}`."""
        text = await request.app.ctx.store.read_execution_field("input")
        return success(data=None if text is None else json.loads(text))

    @bp.post("/output")
    @requires_token
    async def set_output(request: Request, execution_id: str) -> HTTPResponse:
        """Store `{"data": <any JSON>}` as the execution's output."""
        data = required_field(json_object_body(request), "data")
        await request.app.ctx.store.write_result("output", dumps(data))
        return success()

    @bp.post("/condition")
    @requires_token
    async def set_condition(request: Request, execution_id: str) -> HTTPResponse:
        """Store `{"condition": true|false}` as the execution's condition."""
        condition = required_field(json_object_body(request), "condition")
        if not isinstance(condition, bool):
            raise InvalidRequestError("the field 'condition' must be true or false")
        await request.app.ctx.store.write_result("condition", dumps(condition))
        return success()

    @bp.get("/context", ignore_body=False)
    @requires_token
    async def get_context(request: Request, execution_id: str) -> HTTPResponse:
        """The context the orchestrator stored, or a minimal one built from the settings."""
        text = await request.app.ctx.store.read_execution_field("context")
        if text is None:
            return success(data=minimal_context(request.app.ctx.settings))
        return success(data=json.loads(text))

    return bp


def minimal_context(settings: Settings) -> dict[str, Any]:
    """The context when the orchestrator stored none: what the sidecar knows, null for the rest."""
    return {
        "executionId": settings.execution_id,
        "jobId": settings.job_id,
        "jobName": None,
        "jobType": None,
        "namespace": settings.namespace,
        "startTime": None,
        "metadata": {},
    }
