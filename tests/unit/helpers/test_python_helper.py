"""Python helper specifics: import without env, the Cronium class, wrappers, AsyncCronium."""
from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
from helper_harness import EXEC_ID, PY_HELPER, TOKEN, Reply, load_python_helper
from ports import free_port


@pytest.fixture
def mod(monkeypatch):
    for name in [k for k in os.environ if k.startswith("CRONIUM_")]:
        monkeypatch.delenv(name)
    return load_python_helper()


@pytest.fixture
def client(mod, api):
    return mod.Cronium(api_url=api.url, token=TOKEN, execution_id=EXEC_ID, timeout=2, max_retries=2, backoff=0.01)


def _import_and_call(python: str) -> subprocess.CompletedProcess:
    code = (
        "import json, cronium\n"
        "out = {'file': cronium.__file__}\n"
        "try:\n"
        "    cronium.get_variable('k')\n"
        "except cronium.CroniumError as e:\n"
        "    out['error'] = [type(e).__name__, str(e)]\n"
        "print(json.dumps(out))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PY_HELPER.parent)}
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_import_cronium_works_without_env_and_first_call_fails_clearly():
    proc = _import_and_call(sys.executable)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["file"] == str(PY_HELPER)  # `import cronium` found the helper module
    name, message = out["error"]
    assert name == "CroniumConfigError"
    assert "CRONIUM_EXECUTION_TOKEN and CRONIUM_EXECUTION_ID are not set" in message


def _working_python(candidates):
    for candidate in candidates:
        exe = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
            return exe
    return None


@pytest.mark.parametrize(
    "candidates",
    [
        pytest.param(["python3.9", *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))], id="3.9"),
        pytest.param(["/usr/bin/python3.11"], id="debian-3.11"),
    ],
)
def test_helper_runs_on_older_pythons(candidates):
    """The helper promises Python 3.9+; the images run Debian 12's 3.11.2."""
    exe = _working_python(candidates)
    if exe is None:
        pytest.skip(f"none of {candidates} is available here")
    proc = _import_and_call(exe)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["error"][0] == "CroniumConfigError"


def test_error_classes(mod):
    err = mod.CroniumAPIError(400, "bad value")
    assert isinstance(err, mod.CroniumError)
    assert (err.status_code, err.message) == (400, "bad value")
    assert "bad value" in str(err) and "400" in str(err)
    assert issubclass(mod.CroniumTimeoutError, mod.CroniumError)
    assert issubclass(mod.CroniumConnectionError, mod.CroniumError)
    assert not issubclass(mod.CroniumConnectionError, mod.CroniumTimeoutError)
    assert issubclass(mod.CroniumConfigError, mod.CroniumError)


def test_constructor_arguments_are_used(mod, api, monkeypatch):
    monkeypatch.setenv("CRONIUM_EXECUTION_TOKEN", "env-token-not-used")
    monkeypatch.setenv("CRONIUM_EXECUTION_ID", "exec_0000000000000000")
    monkeypatch.setenv("CRONIUM_RUNTIME_API", f"http://127.0.0.1:{free_port()}")
    c = mod.Cronium(api_url=api.url, token=TOKEN, execution_id=EXEC_ID, max_retries=0)
    api.set_input("x")
    assert c.input() == "x"
    rec = api.last()
    assert rec.path == f"/executions/{EXEC_ID}/input"
    assert rec.headers["authorization"] == f"Bearer {TOKEN}"


def test_constructor_max_retries_counts_retries(client, api, mod):
    api.always("GET", f"/executions/{EXEC_ID}/context", Reply(500, {"success": False, "message": "boom"}))
    client.max_retries = 1
    with pytest.raises(mod.CroniumAPIError) as info:
        client.event()
    assert info.value.status_code == 500 and info.value.attempts == 2
    assert api.count() == 2


def test_default_api_url(mod):
    assert mod.Cronium().api_url == "http://runtime-api:8081"


def test_env_knobs_are_read(mod, monkeypatch):
    monkeypatch.setenv("CRONIUM_HELPER_TIMEOUT", "7.5")
    monkeypatch.setenv("CRONIUM_HELPER_RETRIES", "5")
    monkeypatch.setenv("CRONIUM_HELPER_BACKOFF", "0.25")
    c = mod.Cronium()
    assert (c.timeout, c.max_retries, c.backoff) == (7.5, 5, 0.25)
    d = mod.Cronium(timeout=1, max_retries=0, backoff=0)
    assert (d.timeout, d.max_retries, d.backoff) == (1.0, 0, 0.0)


def test_falsy_values_are_values(client, api):
    for value in (0, False, "", [], {}):
        client.set_variable("f", value)
        got = client.get_variable("f")
        assert got == value and type(got) is type(value)


def test_module_level_default_instance_is_lazy(mod, api, monkeypatch):
    assert mod._default is None  # nothing created at import
    monkeypatch.setenv("CRONIUM_RUNTIME_API", api.url)
    monkeypatch.setenv("CRONIUM_EXECUTION_TOKEN", TOKEN)
    monkeypatch.setenv("CRONIUM_EXECUTION_ID", EXEC_ID)
    mod.set_variable("n", 3)
    assert mod.get_variable("n") == 3
    assert isinstance(mod.cronium, mod.Cronium) and mod.cronium is mod.get_default()


def test_env_set_after_a_failed_first_call_is_picked_up(mod, api, monkeypatch):
    with pytest.raises(mod.CroniumConfigError):
        mod.input()
    monkeypatch.setenv("CRONIUM_RUNTIME_API", api.url)
    monkeypatch.setenv("CRONIUM_EXECUTION_TOKEN", TOKEN)
    monkeypatch.setenv("CRONIUM_EXECUTION_ID", EXEC_ID)
    api.set_input(5)
    assert mod.input() == 5


def test_convenience_tool_wrappers(client, api):
    client.send_email("a@example.com", "Subject", "Body", cc=["c@example.com"])
    email = api.last("POST", "/tool-actions/execute").json
    assert email == {
        "tool": "email",
        "action": "send_message",
        "params": {"to": ["a@example.com"], "subject": "Subject", "body": "Body", "cc": ["c@example.com"]},
    }
    client.send_slack_message("#ops", "hi", username="bot")
    slack = api.last("POST", "/tool-actions/execute").json
    assert slack["tool"] == "slack" and slack["params"] == {"channel": "#ops", "text": "hi", "username": "bot"}
    client.send_discord_message("123", "yo")
    discord = api.last("POST", "/tool-actions/execute").json
    assert discord["tool"] == "discord" and discord["params"] == {"channelId": "123", "content": "yo"}


def test_module_level_wrappers_exist(mod):
    for name in ("input", "output", "get_variable", "set_variable", "delete_variable", "set_condition", "event",
                 "execute_tool_action", "send_email", "send_slack_message", "send_discord_message"):
        assert callable(getattr(mod, name)), name


def test_tool_action_is_not_retried_after_a_broken_connection(mod, dropper):
    """A tool action may have run when the connection broke: it is not sent twice; reads are retried."""
    c = mod.Cronium(api_url=dropper.url, token=TOKEN, execution_id=EXEC_ID, timeout=2, max_retries=2, backoff=0.01)
    with pytest.raises(mod.CroniumConnectionError) as info:
        c.execute_tool_action("email", "send_message", {})
    assert dropper.hits == 1
    assert f"could not reach the runtime API at {dropper.url}" in str(info.value)
    with pytest.raises(mod.CroniumConnectionError):
        c.get_variable("k")
    assert dropper.hits == 1 + 3


def test_set_condition_accepts_words_and_rejects_nonsense(client, api, mod):
    client.set_condition("no")
    assert api.last().json == {"condition": False}
    client.set_condition(1)
    assert api.last().json == {"condition": True}
    with pytest.raises(mod.CroniumError):
        client.set_condition("maybe")
    assert api.count() == 2


def test_unserialisable_value_fails_before_sending(client, api, mod):
    with pytest.raises(mod.CroniumError, match="JSON"):
        client.set_variable("k", {1, 2})
    with pytest.raises(mod.CroniumError, match="JSON"):
        client.output(float("nan"))
    assert api.count() == 0


def test_empty_key_is_rejected(client, api, mod):
    with pytest.raises(mod.CroniumError, match="key"):
        client.get_variable("")
    assert api.count() == 0


def test_repr_does_not_show_the_token(client):
    assert TOKEN not in repr(client)
    assert EXEC_ID in repr(client)


def test_debug_log_never_contains_the_token(client, api, caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="cronium.helper"):
        client.set_variable("k", 1)
    assert "PUT" in caplog.text
    assert TOKEN not in caplog.text


def test_async_client(mod, api):
    async def main():
        async with mod.AsyncCronium(api_url=api.url, token=TOKEN, execution_id=EXEC_ID, max_retries=0) as c:
            await c.set_variable("a", 0)
            return await c.get_variable("a"), await c.get_variable("missing")

    assert asyncio.run(main()) == (0, None)
    assert api.count("PUT") == 1 and api.count("GET") == 2


def test_async_stream_input_yields_the_input_once_and_nothing_for_null(mod, api):
    async def collect():
        async with mod.AsyncCronium(api_url=api.url, token=TOKEN, execution_id=EXEC_ID, max_retries=0) as c:
            return [chunk async for chunk in c.stream_input()]

    assert asyncio.run(collect()) == []  # no input (null): nothing
    for value in ({"rows": [1, 2]}, 0, ""):  # falsy inputs are inputs (the original dropped them)
        api.set_input(value)
        assert asyncio.run(collect()) == [value]
    assert api.count("GET", f"/executions/{EXEC_ID}/input") == 4


def test_async_stream_output_collects_the_chunks_into_one_output(mod, api):
    async def chunks():
        for i in range(3):
            await asyncio.sleep(0)
            yield {"chunk": i}

    async def main():
        async with mod.AsyncCronium(api_url=api.url, token=TOKEN, execution_id=EXEC_ID, max_retries=0) as c:
            await c.stream_output(chunks())
            first = api.output
            await c.stream_output(["a", "b"])  # a plain iterable works too
            return first

    assert asyncio.run(main()) == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]
    assert api.output == ["a", "b"]
    assert api.count("POST", f"/executions/{EXEC_ID}/output") == 2


def test_python39_round_trip_timeout_and_refused(api):
    """socket.timeout is not TimeoutError before 3.10: check the error mapping on a real 3.9."""
    exe = _working_python(["python3.9", *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))])
    if exe is None:
        pytest.skip("python3.9 is not available here")
    api.always("GET", f"/executions/{EXEC_ID}/context", Reply(200, {"success": True, "data": {}}, delay=30))
    code = (
        "import json, sys, cronium\n"
        "out = {}\n"
        "cronium.set_variable('z', 0)\n"
        "out['z'] = cronium.get_variable('z')\n"
        "try:\n"
        "    cronium.event()\n"
        "except cronium.CroniumError as e:\n"
        "    out['slow'] = type(e).__name__\n"
        "c = cronium.Cronium(api_url=sys.argv[1], max_retries=0)\n"
        "try:\n"
        "    c.input()\n"
        "except cronium.CroniumError as e:\n"
        "    out['refused'] = [type(e).__name__, str(e)]\n"
        "print(json.dumps(out))\n"
    )
    refused_url = f"http://127.0.0.1:{free_port()}"
    env = {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PY_HELPER.parent),
        "CRONIUM_RUNTIME_API": api.url, "CRONIUM_EXECUTION_TOKEN": TOKEN, "CRONIUM_EXECUTION_ID": EXEC_ID,
        "CRONIUM_HELPER_TIMEOUT": "0.3", "CRONIUM_HELPER_RETRIES": "1", "CRONIUM_HELPER_BACKOFF": "0.01",
    }
    proc = subprocess.run([exe, "-c", code, refused_url], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["z"] == 0 and out["slow"] == "CroniumTimeoutError"
    assert out["refused"][0] == "CroniumConnectionError"
    assert f"could not reach the runtime API at {refused_url}" in out["refused"][1]
    assert api.count("GET", f"/executions/{EXEC_ID}/context") == 2
