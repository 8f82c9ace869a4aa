"""The dashboard's access rules and escaping, without a server or Redis (issue 15)."""
from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from cronium.core.cli import cli
from cronium.core.config import load_config
from cronium.core.dashboard import auth
from cronium.core.dashboard.render import ENVIRONMENT, page_text
from cronium.core.dashboard.timeline import phase_bars
from cronium.core.errors import ConfigError, UsageError

TOKEN = "t" * 24


def _access(tmp_path, **flags):
    return auth.load_access(load_config(flags=flags, use_user_config=False, environ={}, cwd=tmp_path))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.7", "::", "dashboard.example"])
def test_beyond_loopback_without_a_token_refuses_to_start(tmp_path, host):
    with pytest.raises(UsageError) as info:
        auth.check_bind(host, _access(tmp_path))
    assert info.value.exit_code == 2 and "dashboard.admin_token" in info.value.hint


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_loopback_without_a_token_is_allowed(tmp_path, host):
    auth.check_bind(host, _access(tmp_path))


def test_beyond_loopback_with_a_token_is_allowed(tmp_path):
    auth.check_bind("0.0.0.0", _access(tmp_path, **{"dashboard.admin_token": TOKEN}))


def test_cronium_dashboard_on_a_public_address_without_a_token_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0"], env={"CRONIUM_CONFIG": ""})
    assert result.exit_code == 2, result.output
    assert "without authentication" in result.output and "dashboard.admin_token" in result.output
    assert "Traceback" not in result.output


def test_short_tokens_and_equal_tokens_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="shorter than 16"):
        _access(tmp_path, **{"dashboard.admin_token": "short"})
    with pytest.raises(ConfigError, match="the same"):
        _access(tmp_path, **{"dashboard.admin_token": TOKEN, "dashboard.readonly_token": TOKEN})


def test_a_token_is_read_from_its_file_and_never_shown(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text(TOKEN + "\n")
    access = _access(tmp_path, **{"dashboard.admin_token_file": str(path)})
    assert access.required and access.role_of_token(TOKEN) == "admin" and access.role_of_token("x" * 24) is None
    assert TOKEN not in repr(access)
    with pytest.raises(ConfigError, match="cannot read the readonly token"):
        _access(tmp_path, **{"dashboard.readonly_token_file": str(tmp_path / "missing")})


def test_sessions_are_signed_and_expire(tmp_path):
    access = _access(tmp_path, **{"dashboard.admin_token": TOKEN})
    cookie = auth.make_session(access, "readonly")
    assert auth.read_session(access, cookie)["r"] == "readonly"
    body, _, sig = cookie.partition(".")
    import base64
    import json

    raised = json.loads(base64.urlsafe_b64decode(body))
    raised["r"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(raised).encode()).decode() + "." + sig
    assert auth.read_session(access, forged) is None
    assert auth.read_session(access, cookie, now=time.time() + access.session_seconds + 1) is None


def test_a_session_outlives_a_restart_but_not_a_token_change(tmp_path):
    access = _access(tmp_path, **{"dashboard.admin_token": TOKEN, "dashboard.readonly_token": "r" * 24})
    cookie = auth.make_session(access, "admin")
    restarted = _access(tmp_path, **{"dashboard.admin_token": TOKEN, "dashboard.readonly_token": "r" * 24})
    assert auth.read_session(restarted, cookie)["r"] == "admin"
    rotated = _access(tmp_path, **{"dashboard.admin_token": "n" * 24, "dashboard.readonly_token": "r" * 24})
    assert auth.read_session(rotated, cookie) is None
    assert TOKEN.encode() not in access.key and auth.session_key({}) != auth.session_key({})


def test_templates_escape_hostile_text():
    hostile = "<script>alert(1)</script>\x1b]0;title\x07\x1b[31mred\x1b[0m"
    page = ENVIRONMENT.get_template("error.html").render(title=hostile, message=hostile, hint=hostile, role=None)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "\x1b" not in page.split("<title>")[1]
    assert page_text(hostile) == "<script>alert(1)</script>\\x1b]0;title\\x07red"


def test_phase_bars_follow_each_other_on_one_axis():
    bars = phase_bars({"job": 3.0, "token": 0.5, "sidecar_ready": 0.2, "cleanup": 0.5, "network": 1.0})
    assert [b["name"] for b in bars] == ["token", "network", "job", "cleanup"]
    assert bars[0]["x"] == 0 and bars[1]["x"] == pytest.approx(100) and bars[2]["width"] == pytest.approx(600)
    assert phase_bars({}) == []
