"""One reader per job: demultiplex the attach stream, cut it into lines, fan out to sinks.

The executor's handle yields raw `(stream, bytes)` chunks in the order the engine delivered them.
`LineFramer` cuts them into lines with one sequence counter per execution (across stdout and
stderr), never splitting a line unless it exceeds `max_line` bytes (then it emits fragments flagged
partial, so memory stays bounded under any volume). Lines travel in `LogBatch`es — runs of
consecutive lines of one stream — so a million lines cost a few thousand sink calls, not a million.
Sinks are called synchronously from the reader thread: a slow sink slows the reader, the engine's
pipe fills and the job blocks on write (backpressure) instead of cronium buffering without bound.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

from .config import state_dir
from .model import LogRecord

STREAMS = {1: "stdout", 2: "stderr"}


def log_dir(cfg) -> Path:
    """The file sink's directory: `logs.dir`, or `<state dir>/logs`."""
    return Path(cfg["logs.dir"]).expanduser() if cfg["logs.dir"] else state_dir() / "logs"


def log_file(cfg, execution_id: str) -> Path:
    """The file sink's file of one execution (written by the logs plugin, removed by retention)."""
    return log_dir(cfg) / f"{execution_id}.log"


@dataclass(frozen=True)
class LogBatch:
    """Consecutive lines of one stream. `lines` hold no newline; every line but the last ended in
    b"\\n"; the last did too when `terminated` is true (false: a fragment of an over-long line, or
    the final unterminated output)."""

    stream: str
    first_seq: int
    lines: tuple[bytes, ...]
    terminated: bool

    @property
    def count(self) -> int:
        return len(self.lines)

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.lines) - 1

    def raw(self) -> bytes:
        """The exact bytes the job wrote."""
        body = b"\n".join(self.lines)
        return body + b"\n" if self.terminated else body

    def records(self) -> Iterator[LogRecord]:
        last = len(self.lines) - 1
        for i, line in enumerate(self.lines):
            done = i < last or self.terminated
            yield LogRecord(self.first_seq + i, self.stream, line + b"\n" if done else line, partial=not done)


class LogSink(Protocol):
    name: str

    def write(self, batches: Sequence[LogBatch]) -> None: ...

    def close(self, ok: bool) -> None: ...


class LineFramer:
    """Cuts chunks into `LogBatch`es; bounded memory (`max_line` per stream)."""

    def __init__(self, max_line: int = 65536):
        self.max_line = max_line
        self.seq = 0
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._out: list[LogBatch] = []
        self._run_stream = "stdout"
        self._run_first = 0
        self._run_lines: list[bytes] | None = None
        self._run_terminated = True

    def feed(self, stream: str, data: bytes) -> None:
        pending = self._pending[stream]
        buf = pending + data if pending else data
        if b"\n" in buf:
            parts = buf.split(b"\n")
            tail = parts.pop()
            if any(len(p) > self.max_line for p in parts):
                for p in parts:
                    self._emit_long(stream, p, terminated=True)
            else:
                self._emit(stream, parts, terminated=True)
        else:
            tail = buf
        while len(tail) > self.max_line:
            self._emit(stream, [tail[: self.max_line]], terminated=False)
            tail = tail[self.max_line:]
        self._pending[stream] = tail

    def _emit_long(self, stream: str, line: bytes, terminated: bool) -> None:
        while len(line) > self.max_line:
            self._emit(stream, [line[: self.max_line]], terminated=False)
            line = line[self.max_line:]
        self._emit(stream, [line], terminated=terminated)

    def _emit(self, stream: str, lines: list[bytes], terminated: bool) -> None:
        # Extend the open run when it is the same stream and its last line was complete.
        if self._run_lines is not None and self._run_stream == stream and self._run_terminated:
            self._run_lines.extend(lines)
        else:
            self._close_run()
            self._run_stream, self._run_first, self._run_lines = stream, self.seq, list(lines)
        self._run_terminated = terminated
        self.seq += len(lines)

    def _close_run(self) -> None:
        if self._run_lines:
            self._out.append(LogBatch(self._run_stream, self._run_first, tuple(self._run_lines), self._run_terminated))
        self._run_lines = None

    def finish(self) -> None:
        """End of stream: emit unterminated tails."""
        for stream, tail in self._pending.items():
            if tail:
                self._emit(stream, [tail], terminated=False)
            self._pending[stream] = b""

    def take(self) -> list[LogBatch]:
        self._close_run()
        out, self._out = self._out, []
        return out


class LogPump:
    """Runs the reader in a thread: chunks -> framer -> sinks. `done` is set at end of stream."""

    def __init__(self, chunks: Iterable[tuple[int, bytes]], sinks: Sequence[LogSink], *,
                 max_line: int = 65536, on_sink_error: Callable[[str, BaseException], None] | None = None):
        self._chunks = chunks
        self.sinks = list(sinks)
        self.framer = LineFramer(max_line)
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.sink_errors: list[tuple[str, BaseException]] = []
        self._on_sink_error = on_sink_error
        self._thread = threading.Thread(target=self._run, name="cronium-logs", daemon=True)

    @property
    def lines(self) -> int:
        return self.framer.seq

    def start(self) -> None:
        self._thread.start()

    def _deliver(self, batches: list[LogBatch]) -> None:
        if not batches:
            return
        for sink in list(self.sinks):
            try:
                sink.write(batches)
            except Exception as exc:  # a failing sink is dropped; the others keep every record
                self.sinks.remove(sink)
                self.sink_errors.append((sink.name, exc))
                if self._on_sink_error:
                    self._on_sink_error(sink.name, exc)

    def _run(self) -> None:
        framer = self.framer
        try:
            for stream_id, data in self._chunks:
                if data is None:  # the executor signals "nothing more right now": flush
                    self._deliver(framer.take())
                    continue
                framer.feed(STREAMS.get(stream_id, "stdout"), data)
        except Exception as exc:  # the stream broke (engine restart…): keep what we have
            self.error = exc
        finally:
            framer.finish()
            self._deliver(framer.take())
            self.done.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close_sinks(self, ok: bool) -> None:
        for sink in self.sinks:
            try:
                sink.close(ok)
            except Exception as exc:
                self.sink_errors.append((sink.name, exc))
