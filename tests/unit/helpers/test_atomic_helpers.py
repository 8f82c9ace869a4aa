"""The Python and Bash helpers use the sidecar's atomic increment/append routes and expose versions
(If-Match); with an older sidecar (404 on those routes) they fall back to read-modify-write."""
from __future__ import annotations

import json
import shutil

import pytest
from helper_harness import EXEC_ID, TOKEN, Reply, helper_env, load_python_helper, run_bash

VAR = f"/executions/{EXEC_ID}/variables/"
needs_bash = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("jq") is None,
                                reason="the bash helper needs curl and jq")


def answer(value, version=7):
    return Reply(200, {"success": True, "data": {"key": "n", "value": value, "version": version}})


@pytest.fixture
def py(api, monkeypatch):
    for name in ("CRONIUM_RUNTIME_API", "CRONIUM_EXECUTION_TOKEN", "CRONIUM_EXECUTION_ID"):
        monkeypatch.delenv(name, raising=False)
    mod = load_python_helper()
    return mod, mod.Cronium(api_url=api.url, token=TOKEN, execution_id=EXEC_ID, timeout=2, max_retries=1, backoff=0.01)


def test_python_increment_uses_the_atomic_route(api, py):
    _, client = py
    api.script("POST", VAR + "n/increment", answer(42))
    assert client.increment_variable("n", 2) == 42
    assert api.last("POST", VAR + "n/increment").json == {"by": 2}
    assert api.count("PUT") == 0  # no read-modify-write


def test_python_append_uses_the_atomic_route(api, py):
    _, client = py
    api.script("POST", VAR + "log/append", answer(["a", "b"]))
    assert client.append_variable("log", "b", ",") == ["a", "b"]
    assert api.last("POST", VAR + "log/append").json == {"value": "b", "separator": ","}


def test_python_falls_back_for_an_older_sidecar(api, py):
    _, client = py  # the fake API has no atomic routes: 404, like a sidecar from before them
    api.variables["n"] = 40
    assert client.increment_variable("n", 2) == 42
    assert api.variables["n"] == 42
    api.variables["log"] = "a"
    assert client.append_variable("log", "b", "-") == "a-b"


def test_python_compare_and_set_sends_if_match_and_raises_on_409(api, py):
    mod, client = py
    api.script("GET", VAR + "v", answer("x", 5))
    assert client.get_variable_version("v") == ("x", 5)
    api.script("PUT", VAR + "v", Reply(409, {"success": False, "error": "version_conflict",
                                            "message": "variable 'v' is at version 6, not at version 5"}))
    with pytest.raises(mod.CroniumConflictError, match="version 6"):
        client.set_variable("v", "y", if_version=5)
    assert api.last("PUT", VAR + "v").headers["if-match"] == '"5"'
    assert client.get_variable_version("missing") == (None, 0)


@needs_bash
def test_bash_increment_and_append_use_the_atomic_routes(api):
    api.script("POST", VAR + "n/increment", answer(42))
    api.script("POST", VAR + "log/append", answer("a,b"))
    proc = run_bash("cronium_increment_variable n 2\ncronium_append_variable log b ,\n", helper_env(api.url))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42"]
    assert api.last("POST", VAR + "n/increment").json == {"by": 2}
    assert api.last("POST", VAR + "log/append").json == {"value": "b", "separator": ","}
    assert api.count("PUT") == 0


@needs_bash
def test_bash_falls_back_for_an_older_sidecar(api):
    api.variables["n"] = 40
    proc = run_bash("cronium_increment_variable n 2\n", helper_env(api.url))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42"] and api.variables["n"] == 42


@needs_bash
def test_bash_compare_and_set(api):
    api.script("GET", VAR + "v", answer("x", 5))
    api.script("PUT", VAR + "v", Reply(200, {"success": True, "version": 8}),
               Reply(409, {"success": False, "error": "version_conflict", "message": "at version 8, not 5"}))
    proc = run_bash("cronium_get_variable_version v\ncronium_set_variable_if_version v 5 y\n"
                    "cronium_set_variable_if_version v 5 z || echo \"refused $?\"\n", helper_env(api.url))
    assert proc.stdout.split() == ["5", "refused", "1"], proc.stderr
    assert "API Error (409)" in proc.stderr
    puts = api.matching("PUT", VAR + "v")
    assert [p.headers["if-match"] for p in puts] == ['"5"', '"5"'] and puts[0].json == {"value": "y"}


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="the node helper needs node")


@needs_node
def test_node_uses_the_atomic_routes_and_compare_and_set(api):
    from helper_harness import NodeRunner

    api.script("POST", VAR + "n/increment", answer(42))
    api.script("POST", VAR + "log/append", answer([1, 2]))
    api.script("GET", VAR + "v", answer("x", 5))
    api.script("PUT", VAR + "v", Reply(409, {"success": False, "error": "version_conflict", "message": "at 6"}))
    results = NodeRunner().run([("incrementVariable", "n", 2), ("appendVariable", "log", 2, ""),
                                ("getVariableVersion", "v"), ("setVariable", "v", "y", {"ifVersion": 5})],
                               helper_env(api.url))
    assert [r.value for r in results[:3]] == [42, [1, 2], {"value": "x", "version": 5}]
    assert not results[3].ok and results[3].status == 409
    assert api.last("POST", VAR + "n/increment").json == {"by": 2}
    assert api.last("PUT", VAR + "v").headers["if-match"] == '"5"'


@needs_node
def test_node_falls_back_for_an_older_sidecar(api):
    from helper_harness import NodeRunner

    api.variables["n"], api.variables["log"] = 40, "a"
    results = NodeRunner().run([("incrementVariable", "n", 2), ("appendVariable", "log", "b", "-")],
                               helper_env(api.url))
    assert [r.value for r in results] == [42, "a-b"]
    assert api.variables == {"n": 42, "log": "a-b"}
