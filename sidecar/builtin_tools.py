"""Built-in tool actions, registered through the same `register_tools` hook as any plugin."""
from __future__ import annotations

from typing import Any

from .tools import Register, ToolCall, hookimpl


def echo(call: ToolCall) -> dict[str, Any]:
    """Return the parameters it was given (a connectivity check for the tool-action path)."""
    return call.params


@hookimpl
def register_tools(register: Register) -> None:
    register("echo", "echo", echo)
