"""Node helper specifics: exports, require without env, the Cronium class options, wrappers."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helper_harness import (
    EXEC_ID,
    NODE_HELPER_DIR,
    TOKEN,
    Reply,
    _subprocess_env,
    helper_env,
)
from ports import free_port

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def run_node(body: str, env: dict | None = None) -> dict:
    """Run an async JS body (with `cronium` = require('cronium')); it must `return` a JSON value."""
    script = (
        "const cronium = require('cronium');\n"
        "(async () => {\n" + body + "\n})().then(\n"
        "  (v) => process.stdout.write(JSON.stringify({ ok: true, v: v === undefined ? '__undefined__' : v })),\n"
        "  (e) => process.stdout.write(JSON.stringify({ ok: false, name: e.name, message: e.message })),\n"
        ");\n"
    )
    proc = subprocess.run(
        ["node", "-e", script],
        capture_output=True,
        text=True,
        env=_subprocess_env({**(env or {}), "NODE_PATH": str(NODE_HELPER_DIR)}),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_package_json_points_at_index():
    pkg = json.loads((NODE_HELPER_DIR / "cronium" / "package.json").read_text())
    assert pkg["name"] == "cronium" and pkg["main"] == "index.js"


def test_exports_shape_as_in_the_original():
    out = run_node(
        "return {\n"
        "  isClass: typeof cronium === 'function' && cronium.name === 'Cronium',\n"
        "  classProp: cronium.Cronium === cronium,\n"
        "  shortcuts: ['input','output','getVariable','setVariable','setCondition','event','executeToolAction',\n"
        "              'deleteVariable','sendEmail','sendSlackMessage','sendDiscordMessage']\n"
        "      .filter((n) => typeof cronium[n] !== 'function'),\n"
        "  instance: cronium.cronium instanceof cronium,\n"
        "  sameInstance: cronium.cronium === cronium.cronium,\n"
        "  errors: [cronium.CroniumAPIError, cronium.CroniumTimeoutError, cronium.CroniumConnectionError,\n"
        "           cronium.CroniumConfigError].every((E) => new E(400, 'x') instanceof cronium.CroniumError),\n"
        "  apiErr: (() => { const e = new cronium.CroniumAPIError(404, 'gone'); return [e.statusCode, e.message, e.name]; })(),\n"
        "  connNotTimeout: !(new cronium.CroniumConnectionError('x') instanceof cronium.CroniumTimeoutError),\n"
        "};"
    )
    assert out["ok"], out
    v = out["v"]
    assert v["isClass"] and v["classProp"] and v["instance"] and v["sameInstance"]
    assert v["shortcuts"] == []
    assert v["errors"] and v["connNotTimeout"]
    assert v["apiErr"][0] == 404 and "gone" in v["apiErr"][1] and v["apiErr"][2] == "CroniumAPIError"


def test_require_without_env_succeeds_and_first_call_rejects():
    out = run_node("return await cronium.getVariable('k');", env={})
    assert not out["ok"]
    assert out["name"] == "CroniumConfigError"
    assert "CRONIUM_EXECUTION_TOKEN and CRONIUM_EXECUTION_ID are not set" in out["message"]


def test_default_api_url():
    out = run_node("return new cronium.Cronium().apiUrl;", env={})
    assert out["v"] == "http://runtime-api:8081"


def test_constructor_options_win_over_env(api):
    env = {"CRONIUM_EXECUTION_TOKEN": "env-token", "CRONIUM_EXECUTION_ID": "exec_0000000000000000",
           "CRONIUM_RUNTIME_API": f"http://127.0.0.1:{free_port()}"}
    api.set_input(0)
    out = run_node(
        f"const c = new cronium.Cronium({{apiUrl: {json.dumps(api.url)}, token: {json.dumps(TOKEN)}, "
        f"executionId: {json.dumps(EXEC_ID)}, maxRetries: 0}});\n"
        "return await c.input();",
        env=env,
    )
    assert out == {"ok": True, "v": 0}
    rec = api.last()
    assert rec.path == f"/executions/{EXEC_ID}/input" and rec.headers["authorization"] == f"Bearer {TOKEN}"


def test_max_retries_option_counts_retries(api):
    api.always("GET", f"/executions/{EXEC_ID}/context", Reply(503, {"success": False, "message": "store unavailable"}))
    out = run_node(
        f"const c = new cronium.Cronium({{apiUrl: {json.dumps(api.url)}, token: {json.dumps(TOKEN)}, "
        f"executionId: {json.dumps(EXEC_ID)}, maxRetries: 1, backoff: 0.01}});\n"
        "try { await c.event(); } catch (e) { return [e.name, e.statusCode, e.attempts, e.message]; }",
    )
    name, status, attempts, message = out["v"]
    assert (name, status, attempts) == ("CroniumAPIError", 503, 2)
    assert "store unavailable" in message
    assert api.count() == 2


def test_falsy_values_are_not_turned_into_null(api):
    api.set_input(False)
    out = run_node(
        "const r = {};\n"
        "r.input = await cronium.input();\n"
        "for (const [k, v] of [['zero', 0], ['f', false], ['empty', ''], ['nul', null]]) {\n"
        "  await cronium.setVariable(k, v);\n"
        "  r[k] = await cronium.getVariable(k);\n"
        "}\n"
        "r.missing = await cronium.getVariable('missing');\n"
        "return r;",
        env=helper_env(api.url),
    )
    assert out["ok"], out
    assert out["v"] == {"input": False, "zero": 0, "f": False, "empty": "", "nul": None, "missing": None}


def test_undefined_is_sent_as_null(api):
    out = run_node("await cronium.output(undefined); await cronium.setVariable('u', undefined);", env=helper_env(api.url))
    assert out["ok"], out
    assert api.last("POST").json == {"data": None}
    assert api.last("PUT").json == {"value": None}


def test_convenience_tool_wrappers(api):
    out = run_node(
        "await cronium.sendEmail({to: 'a@example.com', subject: 'S', body: 'B', cc: ['c@example.com']});\n"
        "await cronium.sendSlackMessage({channel: '#ops', text: 'hi'});\n"
        "return await cronium.sendDiscordMessage({channelId: '123', content: 'yo'});",
        env=helper_env(api.url),
    )
    assert out["ok"], out
    assert out["v"] == {"ran": "discord.send_message"}
    email, slack, discord = [r.json for r in api.matching("POST", "/tool-actions/execute")]
    assert email == {"tool": "email", "action": "send_message",
                     "params": {"to": ["a@example.com"], "subject": "S", "body": "B", "cc": ["c@example.com"]}}
    assert slack["tool"] == "slack" and slack["params"] == {"channel": "#ops", "text": "hi"}
    assert discord["tool"] == "discord" and discord["params"] == {"channelId": "123", "content": "yo"}


def test_set_condition_words_and_invalid(api):
    out = run_node(
        "await cronium.setCondition('yes');\n"
        "try { await cronium.setCondition('maybe'); } catch (e) { return e.name; }",
        env=helper_env(api.url),
    )
    assert out["v"] == "CroniumError"
    assert [r.json for r in api.requests] == [{"condition": True}]


def test_non_serialisable_value_rejects_before_sending(api):
    out = run_node("await cronium.setVariable('k', 10n);", env=helper_env(api.url))
    assert not out["ok"] and out["name"] == "CroniumError" and "JSON" in out["message"]
    assert api.count() == 0


def test_instance_does_not_expose_the_token():
    out = run_node(
        f"const c = new cronium.Cronium({{token: {json.dumps(TOKEN)}, executionId: 'exec_1'}});\n"
        "return [require('util').inspect(c, {depth: 5}), JSON.stringify(c), Object.keys(c).join(',')];"
    )
    for text in out["v"]:
        assert TOKEN not in text


def test_process_exits_promptly_after_calls(api):
    """No keep-alive socket or timer keeps a job's event loop alive after its last call."""
    script = "require('cronium').input().then((v) => console.log(JSON.stringify(v)));"
    api.set_input({"a": 1})
    proc = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=20,
        env=_subprocess_env({**helper_env(api.url), "NODE_PATH": str(NODE_HELPER_DIR), "CRONIUM_HELPER_TIMEOUT": "600"}),
    )
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"a": 1}


def test_tool_action_is_not_retried_after_a_broken_connection(dropper):
    """A tool action may have run when the connection broke: it is not sent twice; reads are retried."""
    env = helper_env(dropper.url)
    out = run_node("await cronium.executeToolAction('email', 'send_message', {});", env=env)
    assert not out["ok"] and out["name"] == "CroniumConnectionError"
    assert f"could not reach the runtime API at {dropper.url}" in out["message"]
    assert dropper.hits == 1
    out = run_node("await cronium.getVariable('k');", env=env)
    assert not out["ok"] and out["name"] == "CroniumConnectionError"
    assert dropper.hits == 1 + 3
