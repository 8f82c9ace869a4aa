"""Every route's happy path and its request-validation, not-found and store errors."""
from __future__ import annotations

import json

import pytest
from sidecar_helpers import EXECUTION_ID, assert_error, exec_path

# --- health -----------------------------------------------------------------------------------

def test_health_is_healthy_without_a_token(client):
    _, response = client.get("/health")
    assert response.status == 200
    assert response.json == {"status": "healthy", "store": "ok"}


def test_health_is_degraded_with_503_when_the_store_is_down(client, store):
    store.unavailable = True
    _, response = client.get("/health")
    assert response.status == 503
    assert response.json == {"status": "degraded", "store": "unavailable"}


# --- input, output, condition, context ----------------------------------------------------------

def test_input_is_null_when_the_orchestrator_stored_none(client, auth):
    _, response = client.get(exec_path("/input"), headers=auth)
    assert response.status == 200
    assert response.json == {"success": True, "data": None}


def test_input_returns_the_stored_input(client, auth, store):
    store.execution["input"] = json.dumps({"rows": [1, 2, 3], "flag": False})
    _, response = client.get(exec_path("/input"), headers=auth)
    assert response.json == {"success": True, "data": {"rows": [1, 2, 3], "flag": False}}


@pytest.mark.parametrize("data", [{"result": "ok", "n": 3}, [1, "two"], 0, False, "", None])
def test_output_stores_any_json_value(client, auth, store, data):
    _, response = client.post(exec_path("/output"), headers=auth, json={"data": data})
    assert response.status == 200
    assert response.json == {"success": True}
    assert json.loads(store.results["output"]) == data
    assert "output" not in store.execution  # the record is the orchestrator's


@pytest.mark.parametrize("condition", [True, False])
def test_condition_stores_a_boolean(client, auth, store, condition):
    _, response = client.post(exec_path("/condition"), headers=auth, json={"condition": condition})
    assert response.status == 200
    assert response.json == {"success": True}
    assert store.results["condition"] == json.dumps(condition)


@pytest.mark.parametrize("condition", ["true", 1, 0, None, [], {}])
def test_condition_must_be_a_json_boolean(client, auth, store, condition):
    _, response = client.post(exec_path("/condition"), headers=auth, json={"condition": condition})
    body = assert_error(response, 400, "invalid_request")
    assert "true or false" in body["message"]
    assert "condition" not in store.results


def test_context_returns_what_the_orchestrator_stored(client, auth, store):
    context = {"executionId": EXECUTION_ID, "jobId": "nightly", "jobName": "nightly", "jobType": "python",
               "namespace": "default", "startTime": "2026-01-01T00:00:00Z", "metadata": {"team": "data"}}
    store.execution["context"] = json.dumps(context)
    _, response = client.get(exec_path("/context"), headers=auth)
    assert response.json == {"success": True, "data": context}


def test_context_is_built_from_the_settings_when_none_is_stored(client, auth):
    _, response = client.get(exec_path("/context"), headers=auth)
    assert response.status == 200
    assert response.json["data"] == {
        "executionId": EXECUTION_ID, "jobId": "adhoc-hello", "jobName": None, "jobType": None,
        "namespace": "default", "startTime": None, "metadata": {},
    }


# --- variables -----------------------------------------------------------------------------------

JSON_VALUES = [
    pytest.param("plain text", id="string"),
    pytest.param("Grüße, 世界 🚀", id="unicode"),
    pytest.param(42, id="int"),
    pytest.param(-3.25, id="float"),
    pytest.param(2**70, id="big-int"),
    pytest.param(0, id="zero"),
    pytest.param(False, id="false"),
    pytest.param(True, id="true"),
    pytest.param("", id="empty-string"),
    pytest.param(None, id="null"),
    pytest.param({"a": {"b": [1, {"c": None}]}, "d": ""}, id="nested-object"),
    pytest.param([0, False, "", None, [], {}], id="list"),
]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_variable_round_trips_every_json_value_exactly(client, auth, store, value):
    _, put = client.put(exec_path("/variables/my.var:1"), headers=auth, json={"value": value})
    assert put.status == 200
    version = put.json["version"]
    assert put.json == {"success": True, "version": version}
    assert store.variables["my.var:1"] == json.dumps(value, separators=(",", ":"))

    _, get = client.get(exec_path("/variables/my.var:1"), headers=auth)
    assert get.status == 200
    assert get.json == {"success": True, "data": {"key": "my.var:1", "value": value, "version": version}}
    assert get.headers["etag"] == f'"{version}"'
    assert type(get.json["data"]["value"]) is type(value)


def test_missing_variable_is_404_not_500(client, auth):
    _, response = client.get(exec_path("/variables/never_set"), headers=auth)
    body = assert_error(response, 404, "variable_not_found")
    assert "never_set" in body["message"]


def test_delete_variable_removes_it_and_then_404s(client, auth, store):
    store.variables["gone"] = "1"
    _, response = client.delete(exec_path("/variables/gone"), headers=auth)
    assert response.status == 200
    assert response.json == {"success": True}
    assert "gone" not in store.variables
    _, again = client.delete(exec_path("/variables/gone"), headers=auth)
    assert_error(again, 404, "variable_not_found")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("a" * 257, "1-256 characters"),
        ("has%20space", "letters, digits"),
        ("sem;colon", "letters, digits"),
        ("%2Fslash", "letters, digits"),
        ("%C3%A9t%C3%A9", "letters, digits"),
    ],
)
def test_variable_key_is_checked(client, auth, key, reason):
    _, response = client.put(exec_path(f"/variables/{key}"), headers=auth, json={"value": 1})
    body = assert_error(response, 400, "invalid_request")
    assert reason in body["message"]


def test_variable_key_of_256_characters_is_accepted(client, auth, store):
    key = "k" * 256
    _, response = client.put(exec_path(f"/variables/{key}"), headers=auth, json={"value": 1})
    assert response.status == 200
    assert store.variables[key] == "1"


# --- invalid bodies --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b'{"value": NaN}', "not valid JSON"),
        (b'{"value": Infinity}', "not valid JSON"),
        (b'{"value": 1e400}', "out of range"),
        (b'{"value": [-1E+400]}', "out of range"),
        (b'{"value": {"a": 2.5e308}}', "out of range"),
        (b"\xff\xfe\xfa", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"other": 1}', "lacks the field 'value'"),
    ],
)
def test_invalid_variable_body_is_400_with_the_reason(client, auth, store, content, reason):
    _, response = client.put(exec_path("/variables/x"), headers=auth, content=content)
    body = assert_error(response, 400, "invalid_request")
    assert reason in body["message"]
    assert store.variables == {}


@pytest.mark.parametrize(("route", "field"), [("/output", "data"), ("/condition", "condition")])
def test_missing_field_is_400(client, auth, route, field):
    _, response = client.post(exec_path(route), headers=auth, json={})
    body = assert_error(response, 400, "invalid_request")
    assert f"'{field}'" in body["message"]


# --- routing and size errors -----------------------------------------------------------------------

def test_unknown_route_is_404_in_the_error_shape(client, auth):
    _, response = client.get("/no/such/route", headers=auth)
    assert_error(response, 404, "unknown_route")


def test_wrong_method_is_405_in_the_error_shape(client, auth):
    _, response = client.delete(exec_path("/input"), headers=auth)
    body = assert_error(response, 405, "method_not_allowed")
    assert "DELETE" in body["message"]
    assert "GET" in response.headers["allow"]


def test_body_over_the_limit_is_413_in_the_error_shape(serve, build_app, auth, store):
    client = serve(build_app(max_body_bytes=1024))
    _, small = client.put(exec_path("/variables/x"), headers=auth, json={"value": "a" * 900})
    assert small.status == 200
    _, large = client.put(exec_path("/variables/x"), headers=auth, json={"value": "a" * 2000})
    body = assert_error(large, 413, "payload_too_large")
    assert "1024" in body["message"]
    assert json.loads(store.variables["x"]) == "a" * 900


# --- store failures ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("method", "route", "payload"),
    [
        ("get", "/input", None),
        ("post", "/output", {"data": 1}),
        ("post", "/condition", {"condition": True}),
        ("get", "/context", None),
        ("get", "/variables/x", None),
        ("put", "/variables/x", {"value": 1}),
        ("delete", "/variables/x", None),
    ],
)
def test_store_unavailable_is_503_with_a_clear_message(client, auth, store, method, route, payload):
    store.unavailable = True
    kwargs = {"json": payload} if payload is not None else {}
    _, response = getattr(client, method)(exec_path(route), headers=auth, **kwargs)
    body = assert_error(response, 503, "store_unavailable")
    assert "Redis" in body["message"]


def test_unexpected_error_is_500_without_details(client, auth, store, caplog):
    async def broken(name):
        raise RuntimeError("internal detail s3cret")

    store.read_execution_field = broken
    _, response = client.get(exec_path("/input"), headers=auth)
    body = assert_error(response, 500, "internal_error")
    assert "s3cret" not in response.text
    assert "Traceback" not in response.text
    assert body["message"].startswith("the runtime API hit an unexpected error")
    assert any(r.exc_info and "s3cret" in str(r.exc_info[1]) for r in caplog.records)


def test_the_store_is_closed_when_the_server_stops(serve, app, store):
    client = serve(app)
    client.get("/health")
    assert not store.closed
    client.stop()
    assert store.closed


def test_get_with_an_empty_body_is_served_without_error_logs(client, auth, caplog):
    _, response = client.get(exec_path("/input"), headers={**auth, "Content-Length": "0"})
    assert response.status == 200
    assert "body not consumed" not in caplog.text
