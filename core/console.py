"""Job output on this process's terminal: stdout to our stdout, stderr to our stderr (in red where
`core.color` allows), flushed per batch; on a terminal, control characters are shown escaped
(`cronium.core.terminal`, config `logs.terminal_escape`); into a pipe or a file, the exact bytes.

Used by the built-in `logs` plugin's terminal sink and by `cronium run` on the agent path, which
writes what the agent forwards."""
from __future__ import annotations

import sys
from typing import Sequence

from .color import color_enabled
from .terminal import SafeWriter, should_escape


class TerminalSink:
    name = "terminal"

    def __init__(self, out=None, err=None, *, escape: str = "auto"):
        out = out or sys.stdout.buffer
        err = err or sys.stderr.buffer
        self.out = SafeWriter(out, should_escape(out, escape))
        self.err = SafeWriter(err, should_escape(err, escape))
        self.color = color_enabled(err)

    def write(self, batches: Sequence) -> None:
        """`cronium.core.logs.LogBatch`es (anything with `stream` and `raw()`), flushed at the end."""
        touched = {self.write_chunk(b.stream, b.raw()) for b in batches}
        for fh in touched:
            fh.flush()

    def write_chunk(self, stream: str, data: bytes) -> SafeWriter:
        """Write one run of lines of `stream` (not flushed); returns the writer it went to."""
        if stream != "stderr":
            self.out.write(data)
            return self.out
        if self.color:
            self.err.fh.write(b"\x1b[31m")
        self.err.write(data)
        if self.color:
            self.err.fh.write(b"\x1b[0m")
        return self.err

    def close(self, ok: bool) -> None:
        self.out.close()
        self.err.close()
