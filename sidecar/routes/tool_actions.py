"""`POST /tool-actions/execute`: run a tool action provided by a plugin."""
from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from ..errors import InvalidRequestError
from ..tools import ToolCall
from .common import json_object_body, required_field, requires_token, success


def tool_actions_blueprint() -> Blueprint:
    bp = Blueprint("tools")

    @bp.post("/tool-actions/execute")
    @requires_token
    async def execute(request: Request) -> HTTPResponse:
        """Body `{"tool", "action", "params"}` (the original helpers send `config`; both are accepted)."""
        body = json_object_body(request)
        tool = required_field(body, "tool")
        action = required_field(body, "action")
        if not (isinstance(tool, str) and tool and isinstance(action, str) and action):
            raise InvalidRequestError("the fields 'tool' and 'action' must be non-empty strings")
        if "params" in body and "config" in body:
            raise InvalidRequestError("send the arguments as 'params' or as 'config', not both")
        params = body.get("params", body.get("config"))
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidRequestError("the tool arguments ('params' or 'config') must be a JSON object")
        settings = request.app.ctx.settings
        call = ToolCall(tool, action, params, settings.execution_id, settings.job_id, settings.namespace)
        return success(data=await request.app.ctx.tools.execute(call))

    return bp
