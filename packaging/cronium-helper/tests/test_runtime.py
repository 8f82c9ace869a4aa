"""cronium.testing.runtime(): the helper against the in-process runtime API, over HTTP on loopback.

Run from a cronium checkout by tests/unit/helpers/test_helper_package.py (with this folder on
PYTHONPATH), or after `pip install ./packaging/cronium-helper` with plain pytest.
"""
import asyncio
import json
import os
import urllib.error
import urllib.request

import pytest

import cronium
import cronium.testing


def test_the_helper_talks_http_to_it_and_the_state_is_in_memory():
    with cronium.testing.runtime(input=[1, 2], variables={"kept": "x"}) as rt:
        assert rt.url.startswith("http://127.0.0.1:")
        assert cronium.input() == [1, 2]
        cronium.set_variable("n", 0)  # falsy values are values
        cronium.output({"ok": True})
        cronium.set_condition("no")
        assert cronium.get_variable("n") == 0 and cronium.get_variable("missing") is None
        assert cronium.event()["executionId"] == rt.execution_id
    assert rt.output == {"ok": True} and rt.output_set
    assert rt.condition is False
    assert rt.variables == {"kept": "x", "n": 0}
    assert ("GET", f"/executions/{rt.execution_id}/input") in rt.requests


def test_versions_conflicts_increment_append_and_delete_behave_like_the_sidecar():
    with cronium.testing.runtime(variables={"list": [1]}) as rt:
        value, version = cronium.get_variable_version("list")
        assert value == [1] and version >= 1
        assert cronium.set_variable("list", [1, 2], if_version=version) > version
        with pytest.raises(cronium.CroniumConflictError):
            cronium.set_variable("list", [], if_version=version)  # stale: nothing written
        assert cronium.append_variable("list", 3) == [1, 2, 3]
        assert cronium.increment_variable("count", 5) == 5 and cronium.increment_variable("count") == 6
        assert cronium.delete_variable("count") is True and cronium.delete_variable("count") is False
        with pytest.raises(cronium.CroniumAPIError) as bad_key:
            cronium.set_variable("a b", 1)
        assert bad_key.value.status_code == 400
    assert rt.variables == {"list": [1, 2, 3]}  # deleted keys are gone, not null


def test_tool_actions_are_recorded_and_answered_by_the_functions_given():
    tools = {("slack", "send_message"): lambda params: {"ts": "1.0", "echo": params["text"]}}
    with cronium.testing.runtime(tools=tools) as rt:
        assert cronium.send_slack_message("#ops", "hi") == {"ts": "1.0", "echo": "hi"}
        with pytest.raises(cronium.CroniumAPIError) as unknown:
            cronium.send_email("a@example.org", "s", "b")
    assert unknown.value.status_code == 404 and "slack.send_message" in str(unknown.value)
    assert [c["tool"] for c in rt.tool_calls] == ["slack", "email"]
    assert rt.tool_calls[0]["params"] == {"channel": "#ops", "text": "hi"}


def test_a_request_without_its_token_or_for_another_execution_is_refused():
    with cronium.testing.runtime() as rt:
        url = f"{rt.url}/executions/{rt.execution_id}/input"
        with pytest.raises(urllib.error.HTTPError) as no_token:
            urllib.request.urlopen(url, timeout=5)
        other = cronium.Cronium(api_url=rt.url, token=rt.token, execution_id="exec_ffffffffffffffff", max_retries=0)
        with pytest.raises(cronium.CroniumAPIError) as forbidden:
            other.input()
    assert no_token.value.code == 401 and json.loads(no_token.value.read())["error"] == "unauthorized"
    assert forbidden.value.status_code == 403


def test_non_finite_numbers_are_refused_as_by_the_sidecar():
    with cronium.testing.runtime() as rt:
        request = urllib.request.Request(f"{rt.url}/executions/{rt.execution_id}/variables/x", method="PUT",
                                         data=b'{"value": NaN}', headers={"Authorization": f"Bearer {rt.token}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400 and rt.variables == {}


def test_the_environment_and_the_default_client_are_restored():
    os.environ["CRONIUM_EXECUTION_ID"] = "exec_1111111111111111"
    os.environ.pop("CRONIUM_RUNTIME_API", None)
    try:
        with cronium.testing.runtime() as outer:
            with cronium.testing.runtime(input="inner") as inner:
                assert cronium.input() == "inner"
            assert os.environ["CRONIUM_RUNTIME_API"] == outer.url
            assert cronium.input() is None  # the outer runtime again
        assert os.environ["CRONIUM_EXECUTION_ID"] == "exec_1111111111111111"
        assert "CRONIUM_RUNTIME_API" not in os.environ and "CRONIUM_EXECUTION_TOKEN" not in os.environ
    finally:
        os.environ.pop("CRONIUM_EXECUTION_ID", None)
    assert inner.requests and outer.requests


def test_async_client_and_streams_in_the_original_style():
    async def job():
        async with cronium.AsyncCronium() as client:
            chunks = [chunk async for chunk in client.stream_input()]

            async def upper():
                for chunk in chunks:
                    yield chunk.upper()

            await client.stream_output(upper())

    with cronium.testing.runtime(input="abc") as rt:
        asyncio.run(job())
    assert rt.output == ["ABC"]


def test_run_executes_a_script_as_main_and_a_failing_exit_propagates(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import sys, cronium\ncronium.output(sys.argv[1:])\nsys.exit(int(sys.argv[1]))\n")
    with cronium.testing.runtime() as rt:
        rt.run(script, ["0"])
        assert rt.output == ["0"]
        with pytest.raises(SystemExit):
            rt.run(script, ["3"])
    assert rt.output == ["3"]
