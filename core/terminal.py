"""Showing hostile text on a terminal: control characters made visible, never obeyed.

Job output — and whatever a job or a deployment file controls — may carry escape sequences that
retitle, clear or reprogram the terminal of whoever watches it. Every place that shows such text
passes it through this module. On a terminal (the default mode `auto` of `logs.terminal_escape`),
C0 controls except tab and newline are shown as `\\xNN` (ESC as `\\x1b`), DEL and the C1 controls
U+0080–U+009F as `\\u007f`…`\\u009f` (so escaped JSON stays valid JSON), and bytes that are not
UTF-8 as `\\xNN`. Into a pipe or a file the exact bytes go out; `--raw` (mode `never`) opts out on a
terminal too, `always` escapes everywhere. The file and Redis log sinks always keep the exact bytes.
"""
from __future__ import annotations

import codecs
import re
from typing import BinaryIO

#: Values of `logs.terminal_escape`.
ESCAPE_MODES = ("auto", "always", "never")

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x7f else f"\\u{code:04x}"


def escape_text(text: str) -> str:
    """`text` with every control character except tab and newline written out visibly."""
    return _CONTROLS.sub(_visible, text)


def escape_bytes(data: bytes) -> bytes:
    """Job output bytes made safe for a terminal (UTF-8 out; invalid UTF-8 as `\\xNN`)."""
    return OutputEscaper().feed(data, final=True)


class OutputEscaper:
    """Incremental `escape_bytes` for one stream: a UTF-8 sequence cut between two writes is held
    back until the rest arrives (or shown as `\\xNN` at the end), never broken into escapes."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")

    def feed(self, data: bytes, final: bool = False) -> bytes:
        return escape_text(self._decoder.decode(data, final)).encode("utf-8")


def is_terminal(fh) -> bool:
    try:
        return bool(fh.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def should_escape(fh, mode: str) -> bool:
    """Whether text shown on `fh` is escaped: mode `always`, `never`, or `auto` (when `fh` is a terminal)."""
    if mode not in ESCAPE_MODES:
        raise ValueError(f"unknown terminal escape mode {mode!r}: use one of {', '.join(ESCAPE_MODES)}")
    return mode == "always" or (mode == "auto" and is_terminal(fh))


class SafeWriter:
    """A binary stream that escapes what is written to it when `escape` is true (see the module
    docstring), and passes the exact bytes otherwise. `close()` flushes a held-back tail."""

    def __init__(self, fh: BinaryIO, escape: bool):
        self.fh = fh
        self.escape = escape
        self._escaper = OutputEscaper() if escape else None

    def write(self, data: bytes) -> None:
        self.fh.write(self._escaper.feed(data) if self._escaper else data)

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        if self._escaper:
            self.fh.write(self._escaper.feed(b"", final=True))
        self.fh.flush()
