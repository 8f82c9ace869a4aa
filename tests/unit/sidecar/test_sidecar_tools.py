"""`POST /tool-actions/execute` and the lazily loaded `register_tools` plugins."""
from __future__ import annotations

import textwrap

import pytest
from sidecar_helpers import assert_error

EXECUTE = "/tool-actions/execute"


@pytest.mark.parametrize("arguments_field", ["params", "config"])
def test_echo_returns_its_arguments(client, auth, arguments_field):
    arguments = {"text": "hi", "n": 0, "flag": False, "nested": {"list": [1, None]}}
    payload = {"tool": "echo", "action": "echo", arguments_field: arguments}
    _, response = client.post(EXECUTE, headers=auth, json=payload)
    assert response.status == 200
    assert response.json == {"success": True, "data": arguments}


def test_arguments_default_to_an_empty_object(client, auth):
    _, response = client.post(EXECUTE, headers=auth, json={"tool": "echo", "action": "echo"})
    assert response.json == {"success": True, "data": {}}


def test_tools_are_loaded_on_the_first_call_not_at_start_up(app, serve, auth):
    client = serve(app)
    client.get("/health")
    assert app.ctx.tools._handlers is None
    client.post(EXECUTE, headers=auth, json={"tool": "echo", "action": "echo"})
    assert ("echo", "echo") in app.ctx.tools._handlers


def test_unknown_tool_is_404(client, auth):
    _, response = client.post(EXECUTE, headers=auth, json={"tool": "nope", "action": "run"})
    body = assert_error(response, 404, "unknown_tool")
    assert "unknown tool 'nope'" in body["message"]
    assert "echo" in body["message"]


def test_unknown_action_is_404(client, auth):
    _, response = client.post(EXECUTE, headers=auth, json={"tool": "echo", "action": "shout"})
    body = assert_error(response, 404, "unknown_tool")
    assert "has no action 'shout'" in body["message"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "echo"}, "'tool'"),
        ({"tool": "echo"}, "'action'"),
        ({"tool": "", "action": "echo"}, "non-empty strings"),
        ({"tool": "echo", "action": 3}, "non-empty strings"),
        ({"tool": "echo", "action": "echo", "params": [1]}, "must be a JSON object"),
        ({"tool": "echo", "action": "echo", "params": {}, "config": {}}, "not both"),
    ],
)
def test_invalid_tool_request_is_400(client, auth, payload, reason):
    _, response = client.post(EXECUTE, headers=auth, json=payload)
    body = assert_error(response, 400, "invalid_request")
    assert reason in body["message"]


@pytest.fixture
def plugin_distribution(tmp_path, monkeypatch):
    """install(source) -> installs a distribution whose module `demo_tools` is a `cronium.sidecar` plugin."""

    def install(source: str) -> None:
        (tmp_path / "demo_tools.py").write_text(textwrap.dedent(source))
        dist_info = tmp_path / "demo_tools-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-tools\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text("[cronium.sidecar]\ndemo = demo_tools\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(__import__("sys").modules, "demo_tools", raising=False)

    return install


def test_installed_plugin_tools_are_found_through_the_entry_point_group(plugin_distribution, client, auth):
    plugin_distribution(
        """
        from cronium.sidecar.tools import hookimpl

        async def add(call):
            return {"sum": call.params["a"] + call.params["b"], "execution": call.execution_id}

        def fail(call):
            raise RuntimeError("the demo service said no")

        @hookimpl
        def register_tools(register):
            register("demo", "add", add)
            register("demo", "fail", fail)
            register("demo", "bad_result", lambda call: object())
        """
    )
    _, response = client.post(EXECUTE, headers=auth, json={"tool": "demo", "action": "add", "config": {"a": 2, "b": 3}})
    assert response.status == 200
    assert response.json == {"success": True, "data": {"sum": 5, "execution": "exec_0123456789abcdef"}}

    _, failed = client.post(EXECUTE, headers=auth, json={"tool": "demo", "action": "fail"})
    body = assert_error(failed, 502, "tool_failed")
    assert "the demo service said no" in body["message"]

    _, not_json = client.post(EXECUTE, headers=auth, json={"tool": "demo", "action": "bad_result"})
    assert "not JSON" in assert_error(not_json, 502, "tool_failed")["message"]


def test_a_plugin_registering_an_existing_action_fails_clearly(plugin_distribution, client, auth):
    plugin_distribution(
        """
        from cronium.sidecar.tools import hookimpl

        @hookimpl
        def register_tools(register):
            register("echo", "echo", lambda call: None)
        """
    )
    _, response = client.post(EXECUTE, headers=auth, json={"tool": "echo", "action": "echo"})
    body = assert_error(response, 500, "tool_plugins_failed")
    assert "echo.echo is registered twice" in body["message"]


def test_a_plugin_that_cannot_be_imported_fails_clearly(plugin_distribution, client, auth):
    plugin_distribution("raise ImportError('demo needs a missing library')\n")
    _, response = client.post(EXECUTE, headers=auth, json={"tool": "echo", "action": "echo"})
    body = assert_error(response, 500, "tool_plugins_failed")
    assert "demo needs a missing library" in body["message"]
