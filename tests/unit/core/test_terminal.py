"""Hostile job output on a terminal: `cronium.core.terminal` (the one escaping function) and the
places that show job output through it."""
from __future__ import annotations

import io

import pytest
from cronium.core.logs import LineFramer
from cronium.core.terminal import OutputEscaper, SafeWriter, escape_bytes, escape_text, should_escape
from cronium.plugins.logs import TerminalSink

ATTACK = b"\x1b]0;PWNED\x07\x1b[2J"


class FakeTTY(io.BytesIO):
    def isatty(self):
        return True


def frame(chunks):
    framer = LineFramer()
    for stream, data in chunks:
        framer.feed(stream, data)
    framer.finish()
    return framer.take()


def test_title_and_clear_sequences_are_shown_not_obeyed():
    shown = escape_bytes(ATTACK + b"\n")
    assert shown == b"\\x1b]0;PWNED\\x07\\x1b[2J\n"
    assert b"\x1b" not in shown and b"\x07" not in shown


def test_every_c0_control_but_tab_and_newline_is_escaped():
    for code in range(0x20):
        shown = escape_bytes(bytes([code]))
        if code in (0x09, 0x0A):
            assert shown == bytes([code])
        else:
            assert shown == f"\\x{code:02x}".encode(), code


def test_del_and_every_c1_control_are_escaped():
    assert escape_text("\x7f") == "\\u007f"
    for code in range(0x80, 0xA0):
        # as a character (UTF-8 C2 80..C2 9F): a terminal in UTF-8 mode may obey C1 CSI (U+009B)
        assert escape_bytes(chr(code).encode()) == f"\\u{code:04x}".encode(), code
        assert escape_text(chr(code)) == f"\\u{code:04x}"


def test_invalid_utf8_bytes_are_shown_as_hex_escapes():
    # a lone C1 byte (0x9b = 8-bit CSI) is not UTF-8: it must not reach the terminal either
    shown = escape_bytes(b"ok \x9b2J \xff\xfe end\n")
    assert shown == b"ok \\x9b2J \\xff\\xfe end\n"
    assert all(b < 0x80 for b in shown)


def test_printable_unicode_tabs_and_newlines_pass_unchanged():
    text = "naïve café — 日本語 🎉\tcol\n"
    assert escape_bytes(text.encode()) == text.encode()


def test_a_utf8_character_split_between_writes_is_kept_whole():
    escaper = OutputEscaper()
    data = "é\u009b".encode()  # c3 a9 c2 9b
    parts = [escaper.feed(data[i:i + 1]) for i in range(len(data))] + [escaper.feed(b"", final=True)]
    assert b"".join(parts) == "é\\u009b".encode()


def test_a_truncated_character_at_the_end_is_shown_as_hex():
    assert escape_bytes(b"x\xc3") == b"x\\xc3"


def test_escaped_json_stays_json():
    import json

    text = json.dumps({"v": "\x7f\u009b\x1b"}, ensure_ascii=False)
    assert json.loads(escape_text(text)) == {"v": "\x7f\u009b\x1b"}


@pytest.mark.parametrize("mode, tty, expected", [
    ("auto", True, True), ("auto", False, False), ("always", False, True), ("never", True, False)])
def test_escape_mode(mode, tty, expected):
    assert should_escape(FakeTTY() if tty else io.BytesIO(), mode) is expected


def test_unknown_escape_mode_is_refused():
    with pytest.raises(ValueError, match="auto, always, never"):
        should_escape(io.BytesIO(), "sometimes")


def test_safe_writer_passes_exact_bytes_when_not_escaping():
    fh = io.BytesIO()
    writer = SafeWriter(fh, escape=False)
    writer.write(ATTACK + b"\xff\n")
    writer.close()
    assert fh.getvalue() == ATTACK + b"\xff\n"


# --- the terminal sink of `cronium run` --------------------------------------------------------

def test_terminal_sink_escapes_job_output_on_a_terminal():
    out, err = FakeTTY(), FakeTTY()
    sink = TerminalSink(out=out, err=err)
    sink.write(frame([("stdout", ATTACK + b"\n"), ("stderr", b"\x9b31m\x1b[2J\n")]))
    sink.close(ok=True)
    assert b"\x1b" not in out.getvalue() and b"\x07" not in out.getvalue()
    assert out.getvalue() == b"\\x1b]0;PWNED\\x07\\x1b[2J\n"
    # stderr keeps cronium's own red colouring around the escaped text, nothing of the job's
    assert err.getvalue() == b"\x1b[31m\\x9b31m\\x1b[2J\n\x1b[0m"


def test_terminal_sink_passes_exact_bytes_into_a_pipe():
    out, err = io.BytesIO(), io.BytesIO()
    sink = TerminalSink(out=out, err=err)
    sink.write(frame([("stdout", ATTACK + b"\n"), ("stderr", b"\xff\x1b[2J\n")]))
    sink.close(ok=True)
    assert out.getvalue() == ATTACK + b"\n"
    assert err.getvalue() == b"\xff\x1b[2J\n"


def test_terminal_sink_raw_on_a_terminal_passes_exact_bytes():
    out, err = FakeTTY(), io.BytesIO()
    sink = TerminalSink(out=out, err=err, escape="never")
    sink.write(frame([("stdout", ATTACK + b"\n")]))
    sink.close(ok=True)
    assert out.getvalue() == ATTACK + b"\n"


# --- the CLI's text output (run summary, inspect, deployments show, submit --wait) ---------------

def _text_stream(tty: bool):
    return io.TextIOWrapper(FakeTTY() if tty else io.BytesIO(), encoding="utf-8", write_through=True)


@pytest.mark.parametrize("tty, mode, expected", [
    (True, "auto", "about \\x1b]0;PWNED\\x07 \\u009b2J\n"),
    (False, "auto", "about \x1b]0;PWNED\x07 \u009b2J\n"),
    (True, "never", "about \x1b]0;PWNED\x07 \u009b2J\n")])
def test_echo_shown_escapes_text_on_a_terminal(monkeypatch, tty, mode, expected):
    from cronium.core.cli.options import echo_shown

    stream = _text_stream(tty)
    monkeypatch.setattr("sys.stdout", stream)
    echo_shown("about \x1b]0;PWNED\x07 \u009b2J", mode)
    assert stream.buffer.getvalue().decode() == expected


def test_raw_flag_turns_escaping_off_for_the_runtime_too():
    from cronium.core.cli.main import AppContext
    from cronium.core.cli.options import escape_mode

    app = AppContext(None, False, {})
    assert escape_mode(app, raw=True) == "never"
    assert app.config["logs.terminal_escape"] == "never"  # what the terminal sink of `run` reads
    assert escape_mode(AppContext(None, False, {}), raw=False) == "auto"
