"""Tool actions: the `register_tools` hook and the registry behind `POST /tool-actions/execute`.

A plugin is a module (or object) listed in the `cronium.sidecar` entry-point group::

    from cronium.sidecar.tools import ToolCall, hookimpl

    @hookimpl
    def register_tools(register):
        register("slack", "send", send_message)   # send_message(call: ToolCall) -> JSON value

Plugins are loaded once, on the first tool call, never at start-up.
"""
from __future__ import annotations

import importlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pluggy

from .errors import ToolFailedError, ToolLoadError, UnknownToolError

PROJECT_NAME = "cronium.sidecar"
ENTRY_POINT_GROUP = "cronium.sidecar"
BUILTIN_PLUGINS = ("cronium.sidecar.builtin_tools",)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

log = logging.getLogger("cronium.sidecar.tools")


@dataclass(frozen=True)
class ToolCall:
    """One tool action call, as a tool handler receives it."""

    tool: str
    action: str
    params: dict[str, Any]
    execution_id: str
    job_id: str
    namespace: str


ToolHandler = Callable[[ToolCall], Any | Awaitable[Any]]
Register = Callable[[str, str, ToolHandler], None]


class ToolSpecs:
    """The sidecar's hook specifications."""

    @hookspec
    def register_tools(self, register: Register) -> None:
        """Called once, on the first tool call, to collect the tool actions plugins provide.

        :param register: call ``register(tool, action, handler)`` once per action. ``handler``
            receives a `ToolCall` and returns a JSON-serialisable result (or an awaitable of one);
            an exception it raises is answered as a failed tool call with the exception's message.
            Registering the same tool/action pair twice is an error.

        The return value is ignored.
        """


class ToolRegistry:
    """Tool actions by (tool, action), loaded lazily from the built-in and installed plugins."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], ToolHandler] | None = None

    async def execute(self, call: ToolCall) -> Any:
        """Run a tool action and return its result."""
        handler = self._load().get((call.tool, call.action))
        if handler is None:
            raise UnknownToolError(self._unknown_message(call.tool, call.action))
        try:
            result = handler(call)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            log.warning("tool action %s.%s failed: %s", call.tool, call.action, exc)
            raise ToolFailedError(f"tool action {call.tool}.{call.action} failed: {exc}") from None
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            raise ToolFailedError(f"tool action {call.tool}.{call.action} returned a result that is not JSON") from None
        return result

    def _unknown_message(self, tool: str, action: str) -> str:
        handlers = self._handlers or {}
        actions = sorted(a for t, a in handlers if t == tool)
        if actions:
            return f"tool '{tool}' has no action '{action}' (its actions: {', '.join(actions)})"
        tools = sorted({t for t, _ in handlers})
        return f"unknown tool '{tool}' (available tools: {', '.join(tools) or 'none'})"

    def _load(self) -> dict[tuple[str, str], ToolHandler]:
        if self._handlers is None:
            try:
                self._handlers = _collect_tools()
            except ToolLoadError:
                raise
            except Exception as exc:
                log.exception("could not load the sidecar tool plugins")
                raise ToolLoadError(f"could not load the sidecar tool plugins: {exc}") from None
        return self._handlers


def _collect_tools() -> dict[tuple[str, str], ToolHandler]:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(ToolSpecs)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    manager.check_pending()
    handlers: dict[tuple[str, str], ToolHandler] = {}

    def register(tool: str, action: str, handler: ToolHandler) -> None:
        if not (isinstance(tool, str) and tool and isinstance(action, str) and action):
            raise ToolLoadError("register(tool, action, handler) needs non-empty tool and action names")
        if not callable(handler):
            raise ToolLoadError(f"the handler registered for {tool}.{action} is not callable")
        if (tool, action) in handlers:
            raise ToolLoadError(f"tool action {tool}.{action} is registered twice")
        handlers[(tool, action)] = handler

    manager.hook.register_tools(register=register)
    log.info("loaded tool actions: %s", ", ".join(f"{t}.{a}" for t, a in sorted(handlers)) or "none")
    return handlers
