"""Units of the everyday commands: --since, --format, the human record view, log lines (issue 14)."""
from __future__ import annotations

import io
import json
import re

import pytest
from cronium.core.cli.display import ago, duration, human_record, human_value, render_format
from cronium.core.cli.log_lines import Line, LineFormat, entry_lines, file_lines
from cronium.core.cli.options import parse_duration, parse_since
from cronium.core.errors import UsageError

NOW = 1_800_000_000.0


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800),
                                           ("1w", 604800), ("45", 45), ("0.5", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_since(text, now=NOW) == NOW - seconds


@pytest.mark.parametrize("text", ["", "1x", "h", "1h 30m", "-5m", "1h30"])
def test_not_durations(text):
    assert parse_duration(text) is None


def test_since_takes_a_time_in_utc_or_with_an_offset():
    assert parse_since("1970-01-01T00:01:00+00:00") == 60
    assert parse_since("1970-01-01T00:00Z") == 0
    assert parse_since("1970-01-01T02:00:00+02:00") == 0


def test_bad_since_names_the_option_and_the_fix():
    with pytest.raises(UsageError) as err:
        parse_since("last tuesday")
    assert "--since 'last tuesday'" in str(err.value) and "1h" in err.value.hint


def test_ago_and_duration_read_like_docker():
    assert ago(NOW - 5, NOW) == "5 seconds ago"
    assert ago(NOW - 61, NOW) == "1 minute ago"
    assert ago(NOW - 7300, NOW) == "2 hours ago"
    assert ago(None) == "-" and ago(NOW + 3700, NOW) == "in 1 hour" and ago(NOW, NOW) == "just now"
    assert [duration(x) for x in (0.0123, 4.25, 185, 7260)] == ["12ms", "4.2s", "3m05s", "2h01m"]


def test_human_record_has_no_raw_floats():
    rec = {"id": "exec_1", "status": "succeeded", "exit_code": 0, "created_at": NOW - 10.123456,
           "started_at": NOW - 9.5, "finished_at": NOW - 1.25, "timings": {"token": 0.0123, "job": 8.25},
           "warnings": ["a", "b"], "output": {"x": 1}}
    text = human_record(rec, now=NOW)
    assert not re.search(r"\d+\.\d{3,}", text), text
    assert "(10 seconds ago)" in text and "duration     8.2s" in text and "token 12ms, job 8.2s" in text
    assert '{"x": 1}' in text


def test_human_value_has_no_python_reprs():
    assert human_value(("bridge", "cronium-services")) == "bridge, cronium-services"
    assert human_value(None) == "-" and human_value(True) == "yes" and human_value(()) == "-"


def test_format_template():
    rec = {"status": "failed", "exit_code": 3, "timings": {"job": 1.5}, "output": {"a": [1]}, "error": None}
    assert render_format("{{.status}} {{.exit_code}}", rec) == "failed 3"
    assert render_format("{{ .timings.job }}|{{.missing}}|{{.error}}", rec) == "1.5||"
    assert render_format("{{json .output}}", rec) == '{"a": [1]}'
    assert json.loads(render_format("{{json .}}", rec)) == rec
    assert render_format("{{.output}}", {"output": "{{ hostile }}"}) == "{{ hostile }}"  # values are not templates
    with pytest.raises(UsageError) as err:
        render_format("{{.status | upper}}", rec)
    assert "--format" in str(err.value)


def test_stream_entry_lines_carry_time_stream_and_partial():
    lines = entry_lines("1800000000123-0", {b"stream": b"stderr", b"data": b"a\nb\n", b"seq": b"1"})
    assert lines == [Line(1800000000.123, "stderr", b"a"), Line(1800000000.123, "stderr", b"b")]
    cut = entry_lines("1-0", {b"stream": b"stdout", b"data": b"x\nyyy", b"partial": b"1"})
    assert [(x.text, x.partial) for x in cut] == [(b"x", False), (b"yyy", True)]
    assert entry_lines("2-0", {b"eof": b"1"}) == []


def test_line_format_json_and_timestamps():
    out, err = io.BytesIO(), io.BytesIO()
    LineFormat(out, err, as_json=True).write([Line(0.5, "stderr", b"\xffbad")])
    doc = json.loads(out.getvalue())
    assert doc == {"time": "1970-01-01T00:00:00.500Z", "stream": "stderr", "text": "\ufffdbad"}
    out, err = io.BytesIO(), io.BytesIO()
    LineFormat(out, err, timestamps=True).write([Line(0.5, "stdout", b"o"), Line(0.5, "stderr", b"e")])
    assert out.getvalue() == b"1970-01-01T00:00:00.500Z o\n" and err.getvalue() == b"1970-01-01T00:00:00.500Z e\n"


def test_file_lines_tail(tmp_path):
    path = tmp_path / "x.log"
    path.write_bytes(b"1\n2\n3\nlast-no-newline")
    assert [x.text for x in file_lines(path, 2)] == [b"3", b"last-no-newline"]
    assert len(list(file_lines(path, None))) == 4


def test_env_file_follows_dockers_format(tmp_path):
    from cronium.core.cli.run_sources import parse_env_file

    path = tmp_path / "e.env"
    path.write_text("# c\n  \nA=1\nB= spaced \nC='q'\nD\nE\n  F=x=y\n")
    assert parse_env_file(str(path), {"D": "from-env"}) == {"A": "1", "B": " spaced ", "C": "'q'", "D": "from-env",
                                                             "F": "x=y"}


@pytest.mark.parametrize("line, number", [("A=1\nB C=2\n", 2), ("=v\n", 1), ("1A=x\n", 1), ("A =x\n", 1)])
def test_env_file_bad_line_names_file_and_line(tmp_path, line, number):
    from cronium.core.cli.run_sources import parse_env_file

    path = tmp_path / "bad.env"
    path.write_text(line)
    with pytest.raises(UsageError) as err:
        parse_env_file(str(path), {})
    assert f"--env-file {path} line {number}:" in str(err.value)


def test_env_file_missing_is_a_clear_error(tmp_path):
    from cronium.core.cli.run_sources import parse_env_file

    with pytest.raises(UsageError) as err:
        parse_env_file(str(tmp_path / "nope.env"))
    assert "cannot read --env-file" in str(err.value)


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("env, expected", [({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True),
                                           ({"TERM": "dumb"}, False)])
def test_one_place_decides_colour(monkeypatch, env, expected):
    from cronium.core.color import color_enabled

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert color_enabled(_Tty()) is expected
    assert color_enabled(io.StringIO()) is False


def test_terminal_sink_honours_no_color(monkeypatch):
    from cronium.core.logs import LogBatch
    from cronium.plugins.logs import TerminalSink

    monkeypatch.setenv("NO_COLOR", "1")
    err = io.BytesIO()
    err.isatty = lambda: True
    TerminalSink(out=io.BytesIO(), err=err).write([LogBatch("stderr", 1, (b"e",), terminated=True)])
    assert err.getvalue() == b"e\n"
