"""An in-process runtime API to unit-test job scripts without Docker.

::

    import cronium.testing

    def test_my_job():
        with cronium.testing.runtime(input={"n": 2}, variables={"count": 40}) as rt:
            rt.run("jobs/my_job.py")            # or call your own functions that use `cronium`
        assert rt.output == {"doubled": 4}
        assert rt.variables["count"] == 42
        assert rt.condition is True

``runtime()`` starts a small HTTP server on 127.0.0.1 (a free port) that answers the runtime-API
routes of the cronium sidecar (input, output, condition, context, variables with versions,
increment/append, DELETE, tool actions), keeps everything in memory, and points the helper at it
for the duration of the ``with`` block: ``CRONIUM_RUNTIME_API``, ``CRONIUM_EXECUTION_TOKEN`` and
``CRONIUM_EXECUTION_ID`` are set (and restored afterwards) and the module-level functions
(``cronium.input()`` …) get a fresh default client. The helper therefore talks to it over HTTP
exactly as it talks to a sidecar in a job container, including errors: a bad variable key is a 400,
a missing variable a 404 (``get_variable`` gives None), a stale ``if_version`` a 409.

Standard library only. The environment is process-wide: run one ``runtime()`` at a time per
process (nested blocks restore correctly; parallel threads do not mix).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import runpy
import sys
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import cronium as _helper

__all__ = ["runtime", "Runtime", "ToolFunction"]

#: A tool action stand-in: receives the action's params, returns its data.
ToolFunction = Callable[[Dict[str, Any]], Any]

_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,256}")
_ENV = ("CRONIUM_RUNTIME_API", "CRONIUM_EXECUTION_TOKEN", "CRONIUM_EXECUTION_ID")


class _Refusal(Exception):
    """An error answer: HTTP status, wire error code, message (the sidecar's shape)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Runtime:
    """What the job did, in memory. Read (or preset) these attributes in a test:

    ``input`` the execution's input; ``output`` what the job set (None until it does; ``output_set``
    says whether it did); ``condition`` (None until set); ``variables`` name → value (the namespace's
    variables, shared by the block); ``context`` what ``cronium.event()`` returns; ``tool_calls``
    the tool actions run, as ``{"tool", "action", "params"}``; ``requests`` (method, path) of every
    request, in order. ``url``, ``token`` and ``execution_id`` are what the helper was given.
    """

    def __init__(self, input: Any, variables: Dict[str, Any], context: Dict[str, Any],
                 tools: Dict[Tuple[str, str], ToolFunction], execution_id: str):
        self.input = input
        self.output: Any = None
        self.output_set = False
        self.condition: Optional[bool] = None
        self.variables: Dict[str, Any] = dict(variables)
        self.versions: Dict[str, int] = {name: 1 for name in self.variables}
        self.context = context
        self.tools = dict(tools)
        self.tool_calls: List[Dict[str, Any]] = []
        self.requests: List[Tuple[str, str]] = []
        self.execution_id = execution_id
        self.token = "cronium-testing-" + secrets.token_hex(16)
        self.url = ""
        self._seq = 1
        self.lock = threading.Lock()

    def client(self, **kwargs: Any) -> "_helper.Cronium":
        """A :class:`cronium.Cronium` bound to this runtime (without the environment)."""
        return _helper.Cronium(api_url=self.url, token=self.token, execution_id=self.execution_id, **kwargs)

    def run(self, path: str, argv: Optional[List[str]] = None) -> Dict[str, Any]:
        """Run a job script file in this process as ``__main__`` (its globals are returned); an
        exception it raises propagates, ``sys.exit(0)`` does not."""
        saved = sys.argv
        sys.argv = [str(path), *(argv or [])]
        try:
            return runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise
            return {}
        finally:
            sys.argv = saved

    # -- the routes (called with the lock held) ------------------------------------------------

    def answer(self, method: str, rest: str, body: Any, if_match: Optional[int]) -> Dict[str, Any]:
        """The JSON answer to one request below /executions/<id>/ (raises _Refusal)."""
        if rest == "input" and method == "GET":
            return {"success": True, "data": self.input}
        if rest == "context" and method == "GET":
            return {"success": True, "data": self.context}
        if rest == "output" and method == "POST":
            self.output, self.output_set = _field(body, "data"), True
            return {"success": True}
        if rest == "condition" and method == "POST":
            condition = _field(body, "condition")
            if not isinstance(condition, bool):
                raise _Refusal(400, "invalid_request", "the field 'condition' must be true or false")
            self.condition = condition
            return {"success": True}
        if rest.startswith("variables/"):
            return self._variable(method, rest[len("variables/"):], body, if_match)
        raise _Refusal(404, "unknown_route", f"no route {method} /executions/<id>/{rest}")

    def _variable(self, method: str, rest: str, body: Any, if_match: Optional[int]) -> Dict[str, Any]:
        key, _, action = rest.partition("/")
        if not _KEY.fullmatch(key):
            raise _Refusal(400, "invalid_request", "a variable key is 1-256 characters from A-Z a-z 0-9 _ . : -")
        if action and method == "POST" and action in ("increment", "append"):
            value = self._changed(key, action, body)
            return {"success": True, "data": {"key": key, "value": value, "version": self._write(key, value)}}
        if action:
            raise _Refusal(404, "unknown_route", f"no route {method} /executions/<id>/variables/{rest}")
        if method == "GET":
            if key not in self.variables:
                raise _Refusal(404, "variable_not_found", f"variable '{key}' is not set")
            return {"success": True, "data": {"key": key, "value": self.variables[key], "version": self.versions[key]}}
        self._check_version(key, if_match)
        if method == "PUT":
            return {"success": True, "version": self._write(key, _field(body, "value"))}
        if method == "DELETE":
            if key not in self.variables:
                raise _Refusal(404, "variable_not_found", f"variable '{key}' is not set")
            del self.variables[key], self.versions[key]
            return {"success": True}
        raise _Refusal(405, "method_not_allowed", f"{method} is not allowed on a variable")

    def _changed(self, key: str, action: str, body: Any) -> Any:
        current = self.variables.get(key)
        if not isinstance(body, dict):
            raise _Refusal(400, "invalid_request", "the body must be a JSON object")
        try:
            if action == "increment":
                by = body.get("by", 1)
                if isinstance(by, bool) or not isinstance(by, (int, float)):
                    raise _Refusal(400, "invalid_request", "the field 'by' must be a number")
                return _helper._added(key, current, by)
            return _helper._appended(key, current, _field(body, "value"), body.get("separator", ""))
        except _helper.CroniumError as exc:
            raise _Refusal(400, "invalid_request", str(exc)) from None

    def _check_version(self, key: str, if_match: Optional[int]) -> None:
        current = self.versions.get(key, 0)
        if if_match is not None and if_match != current:
            raise _Refusal(409, "version_conflict", f"variable '{key}' is at version {current}, not {if_match}")

    def _write(self, key: str, value: Any) -> int:
        self._seq += 1
        self.variables[key], self.versions[key] = value, self._seq
        return self._seq

    def tool_action(self, body: Any) -> Dict[str, Any]:
        """POST /tool-actions/execute: records the call; a registered tool function gives the data."""
        if not isinstance(body, dict) or not isinstance(body.get("tool"), str) or not isinstance(body.get("action"), str):
            raise _Refusal(400, "invalid_request", "the body needs the string fields 'tool' and 'action'")
        params = body.get("params", body.get("config")) or {}
        self.tool_calls.append({"tool": body["tool"], "action": body["action"], "params": params})
        function = self.tools.get((body["tool"], body["action"]))
        if function is None:
            known = ", ".join(f"{t}.{a}" for t, a in sorted(self.tools)) or "none"
            raise _Refusal(404, "unknown_tool", f"no tool action {body['tool']}.{body['action']} (registered: {known}; "
                           "pass tools={(tool, action): function} to runtime())")
        return {"success": True, "data": function(params)}


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise _Refusal(400, "invalid_request", f"the body must be a JSON object with the field '{name}'")
    return body[name]


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a finite number")


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError as exc:
        raise _Refusal(400, "invalid_request", f"the body is not JSON: {exc}") from None
    if _has_infinity(value):
        raise _Refusal(400, "invalid_request", "a number in the body is out of range")
    return value


def _has_infinity(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_infinity(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_infinity(v) for v in value)
    return False


def _if_match(header: Optional[str]) -> Optional[int]:
    if header is None:
        return None
    text = header.strip().strip('"')
    if not text.isdigit():
        raise _Refusal(400, "invalid_request", "the If-Match header must be a variable version (e.g. \"3\")")
    return int(text)


def _handler(rt: Runtime) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: tests read rt.requests
            pass

        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urllib.parse.urlsplit(self.path).path
            status, payload = _dispatch(rt, self.command, path, raw, self.headers)
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


def _dispatch(rt: Runtime, method: str, raw_path: str, raw: bytes, headers: Any) -> Tuple[int, Dict[str, Any]]:
    path = urllib.parse.unquote(raw_path)
    with rt.lock:
        rt.requests.append((method, path))
        try:
            if path == "/health":
                return 200, {"status": "healthy"}
            if headers.get("Authorization") != f"Bearer {rt.token}":
                raise _Refusal(401, "unauthorized", "missing or invalid token")
            if path == "/tool-actions/execute" and method == "POST":
                return 200, rt.tool_action(_decode(raw))
            prefix = "/executions/"
            execution, _, rest = path[len(prefix):].partition("/") if path.startswith(prefix) else ("", "", "")
            if not execution:
                raise _Refusal(404, "unknown_route", f"no route {method} {path}")
            if execution != rt.execution_id:
                raise _Refusal(403, "forbidden", "the token is for another execution")
            return 200, rt.answer(method, rest, _decode(raw), _if_match(headers.get("If-Match")))
        except _Refusal as refusal:
            return refusal.status, {"success": False, "error": refusal.code, "message": refusal.message}


def _default_context(execution_id: str, namespace: str) -> Dict[str, Any]:
    return {"executionId": execution_id, "jobId": "test-job", "jobName": "test-job", "jobType": "python",
            "namespace": namespace, "startTime": None, "metadata": {}}


@contextlib.contextmanager
def runtime(*, input: Any = None, variables: Optional[Dict[str, Any]] = None,  # noqa: A002 - the helper's name
            context: Optional[Dict[str, Any]] = None, tools: Optional[Dict[Tuple[str, str], ToolFunction]] = None,
            execution_id: str = "exec_0000000000000000", namespace: str = "default") -> Iterator[Runtime]:
    """Serve an in-memory runtime API on 127.0.0.1 and point ``cronium`` at it inside the block.

    ``input``: the execution's input; ``variables``: the namespace's variables before the job;
    ``context``: what ``cronium.event()`` returns (default: a minimal context with ``metadata: {}``);
    ``tools``: ``{(tool, action): function(params) -> data}`` for ``execute_tool_action`` and the
    ``send_*`` helpers (other tool actions answer 404 ``unknown_tool``; every call is recorded).
    """
    rt = Runtime(input, variables or {}, context or _default_context(execution_id, namespace), tools or {},
                 execution_id)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rt))
    server.daemon_threads = True
    rt.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    saved_env = {name: os.environ.get(name) for name in _ENV}
    saved_default = _helper._default
    os.environ.update({"CRONIUM_RUNTIME_API": rt.url, "CRONIUM_EXECUTION_TOKEN": rt.token,
                       "CRONIUM_EXECUTION_ID": execution_id})
    _helper._default = None
    try:
        yield rt
    finally:
        _helper._default = saved_default
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
