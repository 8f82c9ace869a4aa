"""Test harness for the job helper libraries (images/helpers/{python,node,bash}).

`api` is a scripted runtime-API stand-in: a stdlib HTTP server on 127.0.0.1 that records every
request and, unless a test scripted an answer for a route, behaves like the real sidecar
(input, output, variables, condition, context, tool actions; 401 on a wrong token; 404 for an
unknown variable).

`helper` runs the same operations through each of the three helpers (Python in-process, Node and
Bash as subprocesses) and returns uniform `Result`s, so most behaviour is checked once per
language by parametrised tests.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
HELPERS = ROOT / "images" / "helpers"
PY_HELPER = HELPERS / "python" / "cronium.py"
NODE_HELPER_DIR = HELPERS / "node"
BASH_HELPER = HELPERS / "bash" / "cronium.sh"
NODE_DRIVER = Path(__file__).resolve().parent / "node_driver.js"

TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJleGVjdXRpb25JZCI6ImV4ZWNfMyJ9.SECRETsignatureXYZ"
EXEC_ID = "exec_3f9c0a1b2c3d4e5f"

# Fast settings for tests: small timeouts, 2 retries (3 attempts), tiny backoff.
FAST = {"CRONIUM_HELPER_TIMEOUT": "2", "CRONIUM_HELPER_RETRIES": "2", "CRONIUM_HELPER_BACKOFF": "0.01"}


# ------------------------------------------------------------------------------------------------
# Scripted runtime API


@dataclass
class Recorded:
    method: str
    raw_path: str
    path: str
    headers: dict
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encodable, or bytes sent as they are
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


class FakeRuntimeAPI:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.variables: dict[str, Any] = {}
        self.input: Any = None
        self.has_input = False
        self.output: Any = None
        self.condition: Any = None
        self.context: dict = {
            "executionId": EXEC_ID,
            "jobId": "adhoc-hello",
            "jobName": "hello",
            "jobType": "python",
            "namespace": "default",
            "startTime": "2025-01-01T00:00:00Z",
            "metadata": {"team": "ops", "nested": {"n": 1}},
        }
        self._scripted: dict[tuple[str, str], list[Reply]] = {}
        self._always: dict[tuple[str, str], Reply] = {}
        self._lock = threading.Lock()
        self.release = threading.Event()  # wakes slow handlers at teardown
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                raw_path = self.path
                path = urllib.parse.unquote(urllib.parse.urlsplit(raw_path).path)
                rec = Recorded(self.command, raw_path, path, {k.lower(): v for k, v in self.headers.items()}, body)
                with api._lock:
                    api.requests.append(rec)
                reply = api._reply_for(rec)
                if reply.delay:
                    api.release.wait(reply.delay)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- scripting -------------------------------------------------------------------------------

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next len(replies) requests to (method, path) with these replies, in order."""
        self._scripted.setdefault((method, path), []).extend(replies)

    def always(self, method: str, path: str, reply: Reply) -> None:
        """Answer every request to (method, path) with this reply."""
        self._always[(method, path)] = reply

    def set_input(self, value: Any) -> None:
        self.input = value
        self.has_input = True

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.matching(method, path))

    def matching(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def last(self, method: str | None = None, path: str | None = None) -> Recorded:
        found = self.matching(method, path)
        assert found, f"no {method} {path} request was made; got {[(r.method, r.path) for r in self.requests]}"
        return found[-1]

    # -- behaviour -------------------------------------------------------------------------------

    def _reply_for(self, rec: Recorded) -> Reply:
        key = (rec.method, rec.path)
        with self._lock:
            queue = self._scripted.get(key)
            if queue:
                return queue.pop(0)
            if key in self._always:
                return self._always[key]
        return self._emulate(rec)

    @staticmethod
    def _error(status: int, code: str, message: str) -> Reply:
        return Reply(status, {"success": False, "error": code, "message": message})

    def _emulate(self, rec: Recorded) -> Reply:
        if rec.path == "/health":
            return Reply(200, {"status": "healthy"})
        if rec.headers.get("authorization") != f"Bearer {TOKEN}":
            return self._error(401, "unauthorized", "invalid or expired token")
        try:
            body = rec.json
        except ValueError:
            return self._error(400, "invalid_body", "request body is not JSON")
        prefix = f"/executions/{EXEC_ID}/"
        if rec.path == "/tool-actions/execute" and rec.method == "POST":
            if not isinstance(body, dict) or "tool" not in body:
                return self._error(400, "invalid_body", "tool is required")
            return Reply(200, {"success": True, "data": {"ran": f"{body['tool']}.{body.get('action')}"}})
        if not rec.path.startswith(prefix):
            if rec.path.startswith("/executions/"):
                return self._error(403, "forbidden", "execution ID mismatch")
            return self._error(404, "not_found", "no such route")
        rest = rec.path[len(prefix):]
        if rest == "input" and rec.method == "GET":
            return Reply(200, {"success": True, "data": self.input})
        if rest == "output" and rec.method == "POST":
            if not isinstance(body, dict) or "data" not in body:
                return self._error(400, "invalid_body", "body must be an object with a data field")
            self.output = body["data"]
            return Reply(200, {"success": True})
        if rest == "condition" and rec.method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("condition"), bool):
                return self._error(400, "invalid_body", "condition must be true or false")
            self.condition = body["condition"]
            return Reply(200, {"success": True})
        if rest == "context" and rec.method == "GET":
            return Reply(200, {"success": True, "data": self.context})
        if rest.startswith("variables/"):
            name = rest[len("variables/"):]
            if rec.method == "GET":
                if name not in self.variables:
                    return self._error(404, "not_found", f"variable {name!r} not found")
                return Reply(200, {"success": True, "data": {"key": name, "value": self.variables[name]}})
            if rec.method == "PUT":
                if not isinstance(body, dict) or "value" not in body:
                    return self._error(400, "invalid_body", "body must be an object with a value field")
                self.variables[name] = body["value"]
                return Reply(200, {"success": True})
            if rec.method == "DELETE":
                if name not in self.variables:
                    return self._error(404, "variable_not_found", f"variable {name!r} is not set")
                del self.variables[name]
                return Reply(200, {"success": True})
        return self._error(404, "not_found", "no such route")


class DroppingServer:
    """Reads each request, then closes the connection without an answer (a broken connection)."""

    def __init__(self) -> None:
        import socketserver

        outer = self
        self.hits = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.hits += 1
                self.request.recv(65536)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _dropper_fixture():
    server = DroppingServer()
    yield server
    server.close()


def _api_fixture():
    server = FakeRuntimeAPI()
    yield server
    server.close()


# ------------------------------------------------------------------------------------------------
# Uniform helper runners


@dataclass
class Result:
    ok: bool
    value: Any = None
    error: str = ""  # error message (bash: its stderr)
    kind: str = ""  # api | timeout | connection | config | other
    status: int | None = None

    def __repr__(self) -> str:
        if self.ok:
            return f"Result(ok, value={self.value!r})"
        return f"Result(error kind={self.kind} status={self.status} message={self.error!r})"


def _kind_from_class(name: str) -> str:
    return {
        "CroniumAPIError": "api",
        "CroniumTimeoutError": "timeout",
        "CroniumConnectionError": "connection",
        "CroniumConfigError": "config",
    }.get(name, "other:" + name)


def helper_env(api_url: str | None, missing: tuple[str, ...] = (), extra: dict | None = None) -> dict:
    env = {"CRONIUM_EXECUTION_TOKEN": TOKEN, "CRONIUM_EXECUTION_ID": EXEC_ID, **FAST}
    if api_url is not None:
        env["CRONIUM_RUNTIME_API"] = api_url
    for name in missing:
        env.pop(name, None)
    env.update(extra or {})
    return env


def _subprocess_env(env: dict) -> dict:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    base.update(env)
    return base


def load_python_helper(name: str = "cronium_helper_under_test"):
    """Import images/helpers/python/cronium.py under a private name (the project owns `cronium`)."""
    spec = importlib.util.spec_from_file_location(name, PY_HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PythonRunner:
    lang = "python"

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch

    def run(self, ops: list[tuple], env: dict) -> list[Result]:
        for name in [k for k in os.environ if k.startswith("CRONIUM_")]:
            self.monkeypatch.delenv(name)
        for k, v in env.items():
            self.monkeypatch.setenv(k, v)
        mod = load_python_helper()  # a fresh module: import must work whatever the env
        results = []
        for op, *args in ops:
            try:
                results.append(Result(True, getattr(mod, op)(*args)))
            except mod.CroniumError as exc:
                results.append(
                    Result(False, error=str(exc), kind=_kind_from_class(type(exc).__name__),
                           status=getattr(exc, "status_code", None))
                )
        return results


class NodeRunner:
    lang = "node"

    def run(self, ops: list[tuple], env: dict) -> list[Result]:
        calls = [{"fn": op, "args": list(args)} for op, *args in ops]
        proc = subprocess.run(
            ["node", str(NODE_DRIVER)],
            input=json.dumps({"calls": calls}),
            capture_output=True,
            text=True,
            env=_subprocess_env({**env, "NODE_PATH": str(NODE_HELPER_DIR)}),
            timeout=60,
        )
        assert proc.returncode == 0, f"node driver failed: {proc.stderr}"
        out = json.loads(proc.stdout)
        assert out["loaded"] is True
        results = []
        for (op, *_), r in zip(ops, out["results"]):
            if r["ok"]:
                if op in VALUE_RETURNING:
                    assert "value" in r, f"{op} resolved to undefined"
                results.append(Result(True, r.get("value")))
            else:
                results.append(Result(False, error=r["message"], kind=_kind_from_class(r["name"]), status=r.get("statusCode")))
        return results


VALUE_RETURNING = {"input", "getVariable", "event", "executeToolAction", "sendEmail", "sendSlackMessage", "sendDiscordMessage"}

NODE_NAMES = {
    "get_variable": "getVariable",
    "set_variable": "setVariable",
    "delete_variable": "deleteVariable",
    "set_condition": "setCondition",
    "execute_tool_action": "executeToolAction",
}


class NodeSnakeRunner(NodeRunner):
    def run(self, ops: list[tuple], env: dict) -> list[Result]:
        return super().run([(NODE_NAMES.get(op, op), *args) for op, *args in ops], env)


def bash_kind(stderr: str) -> str:
    if "API Error (" in stderr:
        return "api"
    if "timed out" in stderr:
        return "timeout"
    if "could not reach the runtime API" in stderr:
        return "connection"
    if "not set" in stderr:
        return "config"
    return "other"


def run_bash(script: str, env: dict, *, source: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    prefix = f"source {shlex.quote(str(BASH_HELPER))}\n" if source else ""
    return subprocess.run(
        ["bash", "-c", prefix + script],
        capture_output=True,
        text=True,
        env=_subprocess_env(env),
        timeout=timeout,
    )


class BashRunner:
    lang = "bash"

    @staticmethod
    def _command(op: str, args: list) -> tuple[str, bool]:
        """The shell command for an op and whether its stdout is JSON to decode."""
        q = shlex.quote
        if op == "input":
            return "cronium_input", True
        if op == "output":
            return f"cronium_output {q(json.dumps(args[0]))}", False
        if op == "get_variable":
            return f"cronium_get_variable {q(args[0])}", True
        if op == "set_variable":
            return f"cronium_set_variable {q(args[0])} {q(json.dumps(args[1]))}", False
        if op == "delete_variable":
            return f"cronium_delete_variable {q(args[0])}", False
        if op == "set_condition":
            return f"cronium_set_condition {'true' if args[0] else 'false'}", False
        if op == "event":
            return "cronium_event", True
        if op == "execute_tool_action":
            cfg = json.dumps(args[2]) if len(args) > 2 and args[2] is not None else ""
            return f"cronium_execute_tool_action {q(args[0])} {q(args[1])} {q(cfg)}", True
        raise AssertionError(f"unknown op {op}")

    def run(self, ops: list[tuple], env: dict) -> list[Result]:
        with tempfile.TemporaryDirectory(prefix="cronium-bash-") as tmp:
            lines = ["echo loaded > \"$T/loaded\""]
            decode = []
            for i, (op, *args) in enumerate(ops):
                cmd, is_json = self._command(op, args)
                decode.append(is_json)
                lines.append(f'_r=0; _o=$({cmd} 2>"$T/err{i}") || _r=$?; printf "%s" "$_o" >"$T/out{i}"; echo $_r >"$T/rc{i}"')
            proc = run_bash("\n".join(lines), {**env, "T": tmp})
            assert (Path(tmp) / "loaded").exists(), f"sourcing failed: {proc.stderr}"
            results = []
            for i, is_json in enumerate(decode):
                rc = int((Path(tmp) / f"rc{i}").read_text())
                out = (Path(tmp) / f"out{i}").read_text()
                err = (Path(tmp) / f"err{i}").read_text()
                if rc == 0:
                    results.append(Result(True, json.loads(out) if is_json else None))
                else:
                    status = None
                    if "API Error (" in err:
                        status = int(err.split("API Error (", 1)[1].split(")", 1)[0])
                    results.append(Result(False, error=err, kind=bash_kind(err), status=status))
            return results


def _helper_fixture(request, monkeypatch):
    """Runs a list of (op, *args) with the helper of one language; ops use the Python names."""
    if request.param == "python":
        return PythonRunner(monkeypatch)
    if request.param == "node":
        if shutil.which("node") is None:
            pytest.fail("node is not installed")
        return NodeSnakeRunner()
    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.fail("the bash helper tests need curl and jq")
    return BashRunner()
