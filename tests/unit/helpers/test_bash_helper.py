"""Bash helper specifics: safe sourcing, namespace, value coercion, utility functions."""
from __future__ import annotations

import json
import shlex
import shutil
import stat

import pytest
from helper_harness import BASH_HELPER, EXEC_ID, TOKEN, Reply, helper_env, run_bash
from ports import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None, reason="the bash helper needs curl and jq"
)

VAR = f"/executions/{EXEC_ID}/variables/"


def test_sourcing_without_env_under_strict_mode_does_not_exit_the_shell():
    proc = run_bash(
        "set -euo pipefail\n"
        f"source {shlex.quote(str(BASH_HELPER))}\n"
        "echo sourced\n"
        "if cronium_get_variable k; then echo unexpected; else echo \"failed with $?\"; fi\n"
        "echo still-alive\n",
        env={},
        source=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["sourced", "failed with 1", "still-alive"]
    assert "CRONIUM_EXECUTION_TOKEN and CRONIUM_EXECUTION_ID are not set" in proc.stderr


def test_missing_tools_are_reported_at_the_first_call_not_at_source(tmp_path, api):
    # a PATH with bash but without curl and jq
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "bash").symlink_to(shutil.which("bash"))
    proc = run_bash(
        f"source {shlex.quote(str(BASH_HELPER))}; echo sourced; cronium_input; echo \"rc=$?\"",
        env={**helper_env(api.url), "PATH": str(bindir)},
        source=False,
    )
    assert proc.stdout.splitlines() == ["sourced", "rc=1"]
    assert "curl is required" in proc.stderr
    assert api.count() == 0


def test_sourcing_adds_no_variables_and_only_prefixed_functions(tmp_path):
    proc = run_bash(
        "compgen -v | sort > \"$T\"\n"
        f"source {shlex.quote(str(BASH_HELPER))}\n"
        "source " + shlex.quote(str(BASH_HELPER)) + "  # twice is fine\n"
        "compgen -v | sort | comm -13 \"$T\" - | grep -v '^_$' || true\n"
        "echo ---\n"
        "compgen -A function\n",
        env={**helper_env("http://127.0.0.1:1"), "T": str(tmp_path / "vars")},
        source=False,
    )
    assert proc.returncode == 0, proc.stderr
    new_vars, functions = proc.stdout.split("---\n")
    assert [v for v in new_vars.split() if v not in ("BASH_REMATCH", "PIPESTATUS")] == []
    names = functions.split()
    assert "cronium_get_variable" in names and "_cronium_request" in names
    assert [n for n in names if not (n.startswith("cronium_") or n.startswith("_cronium_"))] == []


def test_calls_do_not_leak_variables_into_the_callers_shell(api, tmp_path):
    proc = run_bash(
        "compgen -v | sort > \"$T\"\n"
        "cronium_set_variable k 1 && cronium_get_variable k >/dev/null && cronium_increment_variable k >/dev/null\n"
        "compgen -v | sort | comm -13 \"$T\" - | grep -v -x -e _ -e BASH_REMATCH -e PIPESTATUS || true\n",
        {**helper_env(api.url), "T": str(tmp_path / "vars")},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_running_instead_of_sourcing_prints_a_hint():
    proc = run_bash(f"bash {shlex.quote(str(BASH_HELPER))}", env={}, source=False)
    assert proc.returncode == 1
    assert "source this file" in proc.stderr


def test_functions_work_under_errexit_nounset_pipefail(api):
    proc = run_bash(
        "set -euo pipefail\n"
        "cronium_set_variable count 41\n"
        "v=$(cronium_get_variable missing)\n"
        "n=$(cronium_increment_variable count)\n"
        "cronium_output \"{\\\"n\\\": $n}\"\n"
        "echo \"$v $n\"\n",
        helper_env(api.url),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "null 42"
    assert api.output == {"n": 42}


@pytest.mark.parametrize(
    "arg, stored",
    [
        ("hello world", "hello world"),  # not JSON -> a string
        ("42", 42),
        ("-1.5e3", -1500.0),
        ("007", "007"),  # jq would read 7; the helper keeps the text
        ("nan", "nan"),
        ("12345678901234567890", 12345678901234567890),  # not squeezed through a double
        ("true", True),
        ("null", None),
        ('"42"', "42"),  # JSON-quoted -> the string
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("{not json", "{not json"),
        ("1 2", "1 2"),
        ("", ""),
        ("héllo ✓", "héllo ✓"),
    ],
)
def test_set_variable_sends_json_or_a_json_string(api, arg, stored):
    proc = run_bash(f"cronium_set_variable k {shlex.quote(arg)}", helper_env(api.url))
    assert proc.returncode == 0, proc.stderr
    assert api.last("PUT", VAR + "k").json == {"value": stored}
    assert type(api.variables["k"]) is type(stored)


def test_output_wraps_plain_text_as_a_string(api):
    proc = run_bash("cronium_output 'all done'", helper_env(api.url))
    assert proc.returncode == 0, proc.stderr
    assert api.last("POST").json == {"data": "all done"}


def test_large_value_is_not_limited_by_argv(api):
    big = "x" * 300_000  # more than one exec argument may hold (128 KiB)
    proc = run_bash('cronium_set_variable big "$(head -c 300000 /dev/zero | tr "\\0" x)"', helper_env(api.url))
    assert proc.returncode == 0, proc.stderr
    assert api.variables["big"] == big


def test_get_variable_prints_json_and_raw_with_r(api):
    api.variables.update({"s": "hi there", "o": {"a": 1}, "z": 0, "f": False, "e": ""})
    proc = run_bash(
        "cronium_get_variable s; cronium_get_variable -r s; cronium_get_variable o; cronium_get_variable z;"
        " cronium_get_variable f; cronium_get_variable e; cronium_get_variable missing",
        helper_env(api.url),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ['"hi there"', "hi there", '{"a":1}', "0", "false", '""', "null"]


def test_input_prints_json_and_raw_with_r(api):
    api.set_input("text input")
    proc = run_bash("cronium_input; cronium_input -r", helper_env(api.url))
    assert proc.stdout.splitlines() == ['"text input"', "text input"]


def test_error_status_is_seen_when_curl_fails(api):
    """The original tested $? after `curl | tail`, so curl failures were never seen."""
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_bash("cronium_set_variable k 1; echo \"rc=$?\"", helper_env(url))
    assert proc.stdout.strip() == "rc=1"
    assert f"could not reach the runtime API at {url}" in proc.stderr
    assert "gave up after 3 attempts" in proc.stderr  # refused connections were retried


def test_token_is_not_on_the_curl_command_line(api, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "argv.log"
    wrapper = bindir / "curl"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {shlex.quote(str(log))}\nexec {shutil.which("curl")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = helper_env(api.url)
    proc = run_bash(f'PATH={shlex.quote(str(bindir))}:"$PATH"; cronium_set_variable k 1; cronium_get_variable k', env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
    argv = log.read_text()
    assert "-K" in argv  # our curl really ran
    assert TOKEN not in argv
    assert api.last("GET").headers["authorization"] == f"Bearer {TOKEN}"


def test_variable_exists(api):
    api.variables.update({"zero": 0, "f": False, "nul": None})
    proc = run_bash(
        "for k in zero f nul missing; do cronium_variable_exists $k; echo \"$k=$?\"; done",
        helper_env(api.url),
    )
    assert proc.stdout.splitlines() == ["zero=0", "f=0", "nul=1", "missing=1"]


def test_variable_exists_reports_errors_as_2(api):
    api.always("GET", VAR + "k", Reply(400, {"success": False, "message": "bad key"}))
    proc = run_bash("cronium_variable_exists k; echo \"rc=$?\"", helper_env(api.url))
    assert proc.stdout.strip() == "rc=2" and "bad key" in proc.stderr


def test_increment_variable_starts_from_zero_and_adds(api):
    api.variables["s"] = "10"
    proc = run_bash(
        "cronium_increment_variable c; cronium_increment_variable c; cronium_increment_variable c 5;"
        " cronium_increment_variable c -0.5; cronium_increment_variable s",
        helper_env(api.url),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1", "2", "7", "6.5", "11"]
    assert api.variables["c"] == 6.5 and api.variables["s"] == 11


def test_increment_rejects_non_numbers(api):
    api.variables["t"] = {"a": 1}
    proc = run_bash("cronium_increment_variable t; echo \"rc=$?\"; cronium_increment_variable c x; echo \"rc=$?\"",
                    helper_env(api.url))
    assert proc.stdout.splitlines() == ["rc=1", "rc=1"]
    assert "not a number" in proc.stderr and "increment must be a number" in proc.stderr
    assert api.count("PUT") == 0


def test_append_variable(api):
    api.variables["list"] = [1]
    proc = run_bash(
        "cronium_append_variable log first; cronium_append_variable log second ', ';"
        " cronium_append_variable list 2; cronium_append_variable list two",
        helper_env(api.url),
    )
    assert proc.returncode == 0, proc.stderr
    assert api.variables["log"] == "first, second"
    assert api.variables["list"] == [1, 2, "two"]


def test_delete_variable(api):
    api.variables["k"] = 1
    proc = run_bash("cronium_delete_variable k && cronium_get_variable k && cronium_delete_variable k",
                    helper_env(api.url))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "null"
    assert "k" not in api.variables and api.count("DELETE") == 2 and api.count("PUT") == 0


@pytest.mark.parametrize(
    "word, expected",
    [("true", True), ("1", True), ("yes", True), ("ON", True), ("false", False), ("0", False), ("no", False), ("off", False)],
)
def test_set_condition_words(api, word, expected):
    proc = run_bash(f"cronium_set_condition {word}", helper_env(api.url))
    assert proc.returncode == 0, proc.stderr
    assert api.last("POST").json == {"condition": expected}


def test_set_condition_rejects_other_words(api):
    proc = run_bash("cronium_set_condition maybe; echo \"rc=$?\"", helper_env(api.url))
    assert proc.stdout.strip() == "rc=1" and "invalid condition" in proc.stderr
    assert api.count() == 0


def test_event_field(api):
    proc = run_bash(
        "cronium_event_field jobId; cronium_event_field metadata.nested.n; cronium_event_field metadata;"
        " echo \"[$(cronium_event_field nope)]\"",
        helper_env(api.url),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["adhoc-hello", "1", '{"team":"ops","nested":{"n":1}}', "[]"]


def test_execute_tool_action_rejects_invalid_json(api):
    proc = run_bash("cronium_execute_tool_action slack send_message '{oops'; echo \"rc=$?\"", helper_env(api.url))
    assert proc.stdout.strip() == "rc=1" and "not valid JSON" in proc.stderr
    assert api.count() == 0


def test_tool_action_is_not_retried_after_the_connection_broke(dropper):
    """A tool action may have run when the connection broke: it is not sent twice; reads are retried."""
    proc = run_bash("cronium_execute_tool_action email send_message '{}'; echo \"rc=$?\"", helper_env(dropper.url))
    assert proc.stdout.strip() == "rc=1"
    assert f"could not reach the runtime API at {dropper.url}" in proc.stderr
    assert dropper.hits == 1
    proc = run_bash("cronium_get_variable k; echo \"rc=$?\"", helper_env(dropper.url))
    assert proc.stdout.strip() == "rc=1"
    assert dropper.hits == 1 + 3


def test_tool_action_timeout_is_retried(api):
    api.always("POST", "/tool-actions/execute", Reply(200, {"success": True, "data": None}, delay=30))
    proc = run_bash("cronium_execute_tool_action email send_message '{}'; echo \"rc=$?\"",
                    helper_env(api.url, extra={"CRONIUM_HELPER_TIMEOUT": "0.3"}))
    assert proc.stdout.strip() == "rc=1" and "timed out" in proc.stderr
    assert api.count("POST", "/tool-actions/execute") == 3


def test_send_wrappers(api):
    proc = run_bash(
        "cronium_send_email 'a@x.org, b@x.org' 'Subj' 'Body' --cc c@x.org --html >/dev/null\n"
        "cronium_send_slack_message '#ops' 'hi' --username bot --icon-emoji ':ok:' >/dev/null\n"
        "cronium_send_discord_message 123 yo --embed '{\"title\": \"t\"}'\n",
        helper_env(api.url),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"ran": "discord.send_message"}
    email, slack, discord = [r.json for r in api.matching("POST", "/tool-actions/execute")]
    assert email == {"tool": "email", "action": "send_message",
                     "params": {"to": ["a@x.org", "b@x.org"], "subject": "Subj", "body": "Body", "cc": ["c@x.org"], "html": True}}
    assert slack["params"] == {"channel": "#ops", "text": "hi", "username": "bot", "icon_emoji": ":ok:"}
    assert discord["params"] == {"channelId": "123", "content": "yo", "embeds": [{"title": "t"}]}


def test_info_never_prints_the_token(api):
    proc = run_bash("cronium_info", helper_env(api.url, extra={"CRONIUM_JOB_ID": "adhoc-x"}))
    assert proc.returncode == 0
    assert api.url in proc.stdout and EXEC_ID in proc.stdout and "adhoc-x" in proc.stdout
    assert "token:" in proc.stdout and "set" in proc.stdout
    for part in (TOKEN, TOKEN[:10], TOKEN[:4], TOKEN[-8:]):
        assert part not in proc.stdout + proc.stderr


def test_info_default_api_url():
    proc = run_bash("cronium_info", {})
    assert "http://runtime-api:8081" in proc.stdout and "NOT SET" in proc.stdout


def test_debug_log_has_no_token(api):
    proc = run_bash("cronium_get_variable k >/dev/null", helper_env(api.url, extra={"CRONIUM_DEBUG": "1"}))
    assert "GET " in proc.stderr
    assert TOKEN not in proc.stderr
