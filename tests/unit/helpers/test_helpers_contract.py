"""The runtime-API contract, checked once per helper language (python, node, bash).

Each test runs operations through `helper` (see conftest.py) against the scripted `api` server
and checks both what went over the wire and what the helper returned.
"""
from __future__ import annotations

import json

import pytest
from helper_harness import EXEC_ID, TOKEN, Reply, helper_env
from ports import free_port

# Every JSON type, including the falsy values the original helpers turned into null.
VALUES = [
    pytest.param("hello", id="string"),
    pytest.param("héllo wörld ✓ 日本", id="unicode"),
    pytest.param("line1\nline2\t\"quoted\" \\ back", id="escapes"),
    pytest.param(42, id="int"),
    pytest.param(-3.5, id="float"),
    pytest.param(0, id="zero"),
    pytest.param(False, id="false"),
    pytest.param(True, id="true"),
    pytest.param("", id="empty-string"),
    pytest.param(None, id="null"),
    pytest.param({"a": {"b": [1, "two", None, False]}, "c": 0}, id="nested-object"),
    pytest.param([1, "x", {"k": []}, 0.5], id="list"),
    pytest.param([], id="empty-list"),
    pytest.param({}, id="empty-object"),
]

VAR_PATH = f"/executions/{EXEC_ID}/variables/"


def same_json(a, b) -> bool:
    """Equal as JSON, with types kept apart (0 != False, 1 != 1.0 does not matter here)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def assert_no_token(result) -> None:
    assert TOKEN not in result.error
    # not even a telling part of it
    assert TOKEN[:10] not in result.error and TOKEN[-12:] not in result.error


def assert_auth(rec) -> None:
    assert rec.headers.get("authorization") == f"Bearer {TOKEN}"


# ------------------------------------------------------------------------------------------------
# Each function: method, path, body, header, return value


def test_input_sends_get_and_returns_data(api, helper):
    api.set_input({"name": "alice", "n": [1, 2]})
    [res] = helper.run([("input",)], helper_env(api.url))
    assert res.ok and res.value == {"name": "alice", "n": [1, 2]}
    rec = api.last("GET", f"/executions/{EXEC_ID}/input")
    assert_auth(rec)
    assert api.count() == 1


@pytest.mark.parametrize("value", VALUES)
def test_input_round_trips_every_json_type(api, helper, value):
    api.set_input(value)
    [res] = helper.run([("input",)], helper_env(api.url))
    assert res.ok and same_json(res.value, value)


@pytest.mark.parametrize("value", VALUES)
def test_output_posts_data(api, helper, value):
    [res] = helper.run([("output", value)], helper_env(api.url))
    assert res.ok, res
    rec = api.last("POST", f"/executions/{EXEC_ID}/output")
    assert_auth(rec)
    assert rec.headers.get("content-type", "").startswith("application/json")
    assert same_json(rec.json, {"data": value})


@pytest.mark.parametrize("value", VALUES)
def test_variable_round_trips_every_json_type(api, helper, value):
    [set_res, get_res] = helper.run([("set_variable", "v", value), ("get_variable", "v")], helper_env(api.url))
    assert set_res.ok, set_res
    put = api.last("PUT", VAR_PATH + "v")
    assert_auth(put)
    assert same_json(put.json, {"value": value})
    assert get_res.ok and same_json(get_res.value, value)
    assert_auth(api.last("GET", VAR_PATH + "v"))


def test_missing_variable_is_null_and_not_retried(api, helper):
    [res] = helper.run([("get_variable", "nope")], helper_env(api.url))
    assert res.ok and res.value is None
    assert api.count("GET", VAR_PATH + "nope") == 1


def test_stored_null_is_null(api, helper):
    api.variables["n"] = None
    [res] = helper.run([("get_variable", "n")], helper_env(api.url))
    assert res.ok and res.value is None
    assert api.count("GET", VAR_PATH + "n") == 1


def test_variable_key_is_url_quoted(api, helper):
    key = "a b/c?d#e%f"
    [set_res, get_res] = helper.run([("set_variable", key, 7), ("get_variable", key)], helper_env(api.url))
    assert set_res.ok and get_res.ok and get_res.value == 7
    put = api.last("PUT")
    assert put.raw_path == f"/executions/{EXEC_ID}/variables/a%20b%2Fc%3Fd%23e%25f"
    assert api.variables == {key: 7}


def test_delete_variable_removes_the_key(api, helper):
    api.variables["gone"] = 5
    api.variables["kept"] = 6
    [del_res, get_res] = helper.run([("delete_variable", "gone"), ("get_variable", "gone")], helper_env(api.url))
    assert del_res.ok and get_res.ok and get_res.value is None
    assert api.variables == {"kept": 6}  # the key is gone, not a stored null
    assert api.last("DELETE", VAR_PATH + "gone")
    assert api.count("PUT") == 0


def test_delete_variable_of_a_variable_that_is_not_set_succeeds(api, helper):
    [res] = helper.run([("delete_variable", "never")], helper_env(api.url))
    assert res.ok, res
    assert api.count("DELETE", VAR_PATH + "never") == 1
    assert api.count("PUT") == 0 and api.variables == {}


@pytest.mark.parametrize("old_sidecar", [Reply(405, {"error": "method_not_allowed", "message": "no DELETE"}),
                                         Reply(404, {"error": "not_found", "message": "no such route"})])
def test_delete_variable_falls_back_to_null_on_a_sidecar_without_the_delete_route(api, helper, old_sidecar):
    api.variables["gone"] = 5
    api.always("DELETE", VAR_PATH + "gone", old_sidecar)
    [del_res, get_res] = helper.run([("delete_variable", "gone"), ("get_variable", "gone")], helper_env(api.url))
    assert del_res.ok and get_res.ok and get_res.value is None, (del_res, get_res)
    assert api.last("PUT", VAR_PATH + "gone").json == {"value": None}


def test_delete_variable_reports_other_errors(api, helper):
    api.always("DELETE", VAR_PATH + "k", Reply(403, {"success": False, "error": "forbidden", "message": "nope"}))
    [res] = helper.run([("delete_variable", "k")], helper_env(api.url))
    assert not res.ok and res.kind == "api" and "nope" in res.error
    assert api.count("PUT") == 0


@pytest.mark.parametrize("condition", [True, False])
def test_set_condition_posts_a_boolean(api, helper, condition):
    [res] = helper.run([("set_condition", condition)], helper_env(api.url))
    assert res.ok, res
    rec = api.last("POST", f"/executions/{EXEC_ID}/condition")
    assert_auth(rec)
    assert rec.json == {"condition": condition}
    assert api.condition is condition


def test_event_returns_the_context(api, helper):
    [res] = helper.run([("event",)], helper_env(api.url))
    assert res.ok and res.value == api.context
    assert_auth(api.last("GET", f"/executions/{EXEC_ID}/context"))


def test_execute_tool_action_sends_params_and_returns_data(api, helper):
    config = {"channel": "#ops", "text": "déployé ✓", "count": 0}
    [res] = helper.run([("execute_tool_action", "slack", "send_message", config)], helper_env(api.url))
    assert res.ok and res.value == {"ran": "slack.send_message"}
    rec = api.last("POST", "/tool-actions/execute")
    assert_auth(rec)
    assert rec.json["tool"] == "slack" and rec.json["action"] == "send_message"
    assert rec.json["params"] == config


def test_tool_action_falsy_data_is_kept(api, helper):
    api.script("POST", "/tool-actions/execute", Reply(200, {"success": True, "data": 0}))
    [res] = helper.run([("execute_tool_action", "t", "a", {})], helper_env(api.url))
    assert res.ok and res.value == 0 and res.value is not False


# ------------------------------------------------------------------------------------------------
# Errors and retries


@pytest.mark.parametrize("status", [400, 401, 403, 413, 429])
def test_4xx_raises_at_once_with_the_server_message(api, helper, status):
    api.always("PUT", VAR_PATH + "k", Reply(status, {"success": False, "error": "nope", "message": f"server says no ({status})"}))
    [res] = helper.run([("set_variable", "k", 1)], helper_env(api.url))
    assert not res.ok
    assert res.kind == "api" and res.status == status
    assert f"server says no ({status})" in res.error
    assert api.count("PUT", VAR_PATH + "k") == 1  # not retried
    assert_no_token(res)


def test_4xx_on_read_is_not_retried_either(api, helper):
    api.always("GET", f"/executions/{EXEC_ID}/input", Reply(403, {"success": False, "error": "forbidden", "message": "execution ID mismatch"}))
    [res] = helper.run([("input",)], helper_env(api.url))
    assert not res.ok and res.kind == "api" and res.status == 403
    assert "execution ID mismatch" in res.error
    assert api.count() == 1


def test_wrong_token_gets_the_401_message(api, helper):
    [res] = helper.run([("event",)], helper_env(api.url, extra={"CRONIUM_EXECUTION_TOKEN": "wrong-token"}))
    assert not res.ok and res.status == 401 and "invalid or expired token" in res.error
    assert api.count() == 1


def test_success_false_in_a_200_is_an_error(api, helper):
    api.script("POST", "/tool-actions/execute", Reply(200, {"success": False, "error": "tool_failed", "message": "smtp refused"}))
    [res] = helper.run([("execute_tool_action", "email", "send_message", {"to": ["a@b"]})], helper_env(api.url))
    assert not res.ok and res.kind == "api" and "smtp refused" in res.error
    assert api.count() == 1


def test_5xx_is_retried_then_succeeds(api, helper):
    api.variables["k"] = {"ok": 1}
    api.script(
        "GET", VAR_PATH + "k",
        Reply(500, {"success": False, "error": "internal", "message": "boom"}),
        Reply(503, {"success": False, "error": "store_unavailable", "message": "store unavailable"}),
    )
    [res] = helper.run([("get_variable", "k")], helper_env(api.url))
    assert res.ok and res.value == {"ok": 1}
    assert api.count("GET", VAR_PATH + "k") == 3


def test_5xx_on_write_is_retried_then_succeeds(api, helper):
    api.script("POST", f"/executions/{EXEC_ID}/output", Reply(502, b"<html>bad gateway</html>"))
    [res] = helper.run([("output", {"x": 1})], helper_env(api.url))
    assert res.ok, res
    assert api.count("POST", f"/executions/{EXEC_ID}/output") == 2
    assert api.output == {"x": 1}


def test_5xx_gives_up_after_max_retries(api, helper):
    api.always("GET", f"/executions/{EXEC_ID}/context", Reply(503, {"success": False, "error": "store_unavailable", "message": "store unavailable"}))
    [res] = helper.run([("event",)], helper_env(api.url))  # CRONIUM_HELPER_RETRIES=2
    assert not res.ok and res.kind == "api" and res.status == 503
    assert "store unavailable" in res.error and "3 attempts" in res.error
    assert api.count("GET", f"/executions/{EXEC_ID}/context") == 3
    assert_no_token(res)


def test_retries_knob_zero_disables_retries(api, helper):
    api.always("GET", f"/executions/{EXEC_ID}/input", Reply(500, {"success": False, "message": "boom"}))
    [res] = helper.run([("input",)], helper_env(api.url, extra={"CRONIUM_HELPER_RETRIES": "0"}))
    assert not res.ok and res.status == 500
    assert api.count() == 1


def test_501_is_not_retried(api, helper):
    api.always("POST", "/tool-actions/execute", Reply(501, {"success": False, "error": "not_implemented", "message": "no such tool"}))
    [res] = helper.run([("execute_tool_action", "fax", "send", {})], helper_env(api.url))
    assert not res.ok and res.status == 501 and "no such tool" in res.error
    assert api.count() == 1


def test_timeout_is_retried_and_reported_as_a_timeout(api, helper):
    api.always("GET", f"/executions/{EXEC_ID}/input", Reply(200, {"success": True, "data": 1}, delay=30))
    [res] = helper.run([("input",)], helper_env(api.url, extra={"CRONIUM_HELPER_TIMEOUT": "0.3"}))
    assert not res.ok and res.kind == "timeout", res
    assert "timed out" in res.error
    assert api.count() == 3  # first attempt + 2 retries
    assert_no_token(res)


def test_connection_refused_is_a_clear_connection_error(helper):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    [res] = helper.run([("get_variable", "k")], helper_env(url))
    assert not res.ok and res.kind == "connection", res
    assert f"could not reach the runtime API at {url}" in res.error
    assert "timed out" not in res.error.lower() and "timeout" not in res.error.lower()
    assert_no_token(res)


@pytest.mark.parametrize("missing", ["CRONIUM_EXECUTION_TOKEN", "CRONIUM_EXECUTION_ID"])
def test_missing_env_fails_at_the_first_call_not_at_load(api, helper, missing):
    # the runner asserts that import / require / source itself succeeded
    [res] = helper.run([("get_variable", "k")], helper_env(api.url, missing=(missing,)))
    assert not res.ok and res.kind == "config", res
    assert f"{missing} is not set" in res.error
    assert api.count() == 0


def test_missing_both_names_both(api, helper):
    [res] = helper.run([("input",)], helper_env(api.url, missing=("CRONIUM_EXECUTION_TOKEN", "CRONIUM_EXECUTION_ID")))
    assert not res.ok and res.kind == "config"
    assert "CRONIUM_EXECUTION_TOKEN and CRONIUM_EXECUTION_ID are not set" in res.error


def test_server_message_echoing_the_token_is_redacted(api, helper):
    api.always("PUT", VAR_PATH + "k", Reply(400, {"success": False, "error": "bad", "message": f"bad token {TOKEN} here"}))
    [res] = helper.run([("set_variable", "k", 1)], helper_env(api.url))
    assert not res.ok and res.status == 400
    assert "bad token" in res.error and "here" in res.error
    assert_no_token(res)


def test_trailing_slash_in_api_url_is_ignored(api, helper):
    [res] = helper.run([("input",)], helper_env(api.url + "/"))
    assert res.ok
    assert api.last().raw_path == f"/executions/{EXEC_ID}/input"
