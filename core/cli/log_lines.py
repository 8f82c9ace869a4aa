"""`cronium logs` line by line: `--tail`, `--since`, `-t/--timestamps`, `--json`, and the fallback to
the log file once the Redis stream has expired.

The Redis stream (`P logs:<execution>`) holds runs of lines per entry; an entry's id is the time it
was written (milliseconds), which is each of its lines' time. The file sink (`<logs.dir>/<id>.log`)
keeps the exact bytes, stdout and stderr interleaved, without times: read from it, lines have
neither a time nor a stream, and the command says so on stderr.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import click
from cronium.core.errors import NotFound

PAGE = 1000


@dataclass(frozen=True)
class Line:
    time: float | None  # unix seconds; None from the log file
    stream: str | None  # stdout | stderr; None from the log file
    text: bytes  # without the newline
    partial: bool = False  # a fragment of a longer line (logs.max_line_bytes)


@dataclass(frozen=True)
class LineFormat:
    """How lines are printed: to stdout/stderr by stream, or as JSON objects on stdout."""
    out: BinaryIO
    err: BinaryIO
    timestamps: bool = False
    as_json: bool = False

    def write(self, lines: Iterable[Line]) -> None:
        for line in lines:
            if self.as_json:
                doc = {"time": iso_time(line.time), "stream": line.stream, "text": line.text.decode("utf-8", "replace")}
                if line.partial:
                    doc["partial"] = True
                self.out.write(json.dumps(doc, ensure_ascii=False).encode() + b"\n")
                continue
            prefix = f"{iso_time(line.time) or '-'} ".encode() if self.timestamps else b""
            (self.err if line.stream == "stderr" else self.out).write(prefix + line.text + b"\n")
        self.out.flush()
        self.err.flush()


def iso_time(ts: float | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, as `docker logs -t` prints (there with nanoseconds)."""
    from cronium.core.record import iso

    return None if ts is None else iso(ts)


def entry_lines(entry_id: str, fields: dict[bytes, bytes]) -> list[Line]:
    """The lines of one stream entry (none for the `eof` entry)."""
    if b"eof" in fields:
        return []
    when = int(entry_id.split("-", 1)[0]) / 1000
    stream = fields.get(b"stream", b"stdout").decode()
    data = fields.get(b"data", b"")
    partial = fields.get(b"partial") == b"1"
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    return [Line(when, stream, text, partial and i == len(parts) - 1) for i, text in enumerate(parts)]


def _start_id(since: float | None) -> str:
    return "-" if since is None else str(int(since * 1000))


def tail_lines(logs, execution_id: str, n: int, *, since: float | None,
               streams: set[str]) -> tuple[list[Line], str, bool]:
    """The last `n` lines (after `since`) of the stream, the id of its newest entry, and whether
    that entry is the `eof` one (the job ended)."""
    first = logs.span(execution_id, start=_start_id(since), count=1, newest_first=True)
    if not first:
        return [], "0-0", False
    newest, ended = first[0][0], b"eof" in first[0][1]
    pages: list[list[Line]] = []
    count, end = 0, "+"
    while count < n:
        entries = logs.span(execution_id, start=_start_id(since), end=end, count=PAGE // 4, newest_first=True)
        if not entries:
            break
        for entry_id, fields in entries:
            lines = [x for x in entry_lines(entry_id, fields) if x.stream in streams]
            pages.append(lines)
            count += len(lines)
        end = f"({entries[-1][0]}"
    ordered = [line for lines in reversed(pages) for line in lines]
    return (ordered[-n:] if n else []), newest, ended


def print_stream(store, execution_id: str, fmt: LineFormat, *, tail: int | None, since: float | None,
                 streams: set[str], follow: bool) -> None:
    """Print the lines of the execution's Redis stream; with `follow`, until the job ends."""
    if tail is not None:
        lines, last, ended = tail_lines(store.logs, execution_id, tail, since=since, streams=streams)
        fmt.write(lines)
    else:
        last, ended = "0-0", False
        for entry_id, fields in forward_entries(store.logs, execution_id, since=since):
            last, ended = entry_id, ended or b"eof" in fields
            fmt.write(x for x in entry_lines(entry_id, fields) if x.stream in streams)
    if follow and not ended:
        follow_stream(store, execution_id, fmt, after=last, streams=streams)


def follow_stream(store, execution_id: str, fmt: LineFormat, *, after: str, streams: set[str]) -> None:
    """New lines after the entry `after` until the `eof` entry (or the job ended without one)."""
    from cronium.core.model import ENDED_STATUSES

    while True:
        entries = store.logs.read(execution_id, after, block_ms=1000)
        for entry_id, fields in entries:
            after = entry_id
            if b"eof" in fields:
                return
            fmt.write(x for x in entry_lines(entry_id, fields) if x.stream in streams)
        if not entries and store.records.status(execution_id) in ENDED_STATUSES \
                and not store.logs.exists(execution_id):
            return


def forward_entries(logs, execution_id: str, *, since: float | None) -> Iterator[tuple[str, dict]]:
    """Every entry from `since` on, oldest first, page by page."""
    start = _start_id(since)
    while True:
        entries = logs.span(execution_id, start=start, count=PAGE)
        yield from entries
        if len(entries) < PAGE:
            return
        start = f"({entries[-1][0]}"


def file_lines(path: Path, tail: int | None) -> Iterator[Line]:
    """The lines of the log file (all, or the last `tail`), bounded memory either way."""
    with path.open("rb") as fh:
        lines: Iterable[bytes] = deque(fh, maxlen=tail) if tail is not None else fh
        for raw in lines:
            yield Line(None, None, raw[:-1] if raw.endswith(b"\n") else raw)


def show_file(path: Path, execution_id: str, fmt: LineFormat, *, tail: int | None, since: str | None,
              stream: str, why: str) -> None:
    """Print the execution's log file instead of its expired (or never written) Redis stream."""
    if not path.is_file():
        raise NotFound(f"no log lines for {execution_id}: {why}, and there is no log file {path}",
                       hint="the file sink was off (logs.file = false), in another logs.dir, on another host, "
                            "or removed by retention; the Redis stream is kept logs.redis_ttl seconds")
    notes = [f"cronium: {why}; showing the log file {path}"]
    if since or stream != "all" or fmt.timestamps:
        notes.append("(the file has neither times nor streams: --since, --stream and -t do not apply)")
    click.echo(" ".join(notes), err=True)
    if tail is None and not fmt.as_json:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                fmt.out.write(chunk)
        fmt.out.flush()
        return
    fmt.write(file_lines(path, tail))
