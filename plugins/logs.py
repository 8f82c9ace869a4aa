"""Built-in plugin `logs`: the sinks for job output — terminal, Redis stream, file.

- terminal: stdout to our stdout, stderr to our stderr (in red where `core.color` allows), flushed per batch.
- Redis stream `P logs:<execution>`: one entry per run of lines (fields seq, stream, data,
  partial), approximately trimmed to `logs.redis_max_entries`, closed with an `eof` entry and
  expired after `logs.redis_ttl` seconds.
- file `<logs.dir>/<execution>.log`: the exact bytes the job wrote, stdout and stderr interleaved
  in arrival order (binary and invalid UTF-8 preserved), mode 0600.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from cronium.core import hookimpl
from cronium.core.color import color_enabled
from cronium.core.logs import LogBatch, log_file

#: Upper bound of the data in one Redis stream entry.
REDIS_ENTRY_BYTES = 512 * 1024


class TerminalSink:
    name = "terminal"

    def __init__(self, out=None, err=None):
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.color = color_enabled(err or sys.stderr)

    def write(self, batches: Sequence[LogBatch]) -> None:
        touched = set()
        for b in batches:
            if b.stream == "stderr":
                data = b.raw()
                self.err.write(b"\x1b[31m" + data + b"\x1b[0m" if self.color else data)
                touched.add(self.err)
            else:
                self.out.write(b.raw())
                touched.add(self.out)
        for fh in touched:
            fh.flush()

    def close(self, ok: bool) -> None:
        self.out.flush()
        self.err.flush()


class FileSink:
    name = "file"

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file already existed with other permissions
        self.path = path
        self.fh = os.fdopen(fd, "wb", buffering=1024 * 1024)

    def write(self, batches: Sequence[LogBatch]) -> None:
        write = self.fh.write
        for b in batches:
            write(b.raw())

    def close(self, ok: bool) -> None:
        self.fh.close()


class RedisStreamSink:
    name = "redis"

    def __init__(self, store, execution_id: str, *, max_entries: int, ttl: int):
        self.logs = store.logs
        self.execution_id = execution_id
        self.max_entries = max_entries
        self.ttl = ttl

    def write(self, batches: Sequence[LogBatch]) -> None:
        entries = ({"seq": seq, "stream": b.stream, "data": data, "partial": int(partial)}
                   for b in batches for seq, data, partial in _entries(b))
        self.logs.append(self.execution_id, entries, max_entries=self.max_entries)

    def close(self, ok: bool) -> None:
        self.logs.end(self.execution_id, max_entries=self.max_entries, ttl=self.ttl)


def _entries(batch: LogBatch):
    """Split a batch into entries of at most REDIS_ENTRY_BYTES (whole lines per entry)."""
    lines, seq, start, size = batch.lines, batch.first_seq, 0, 0
    for i, line in enumerate(lines):
        size += len(line) + 1
        if size >= REDIS_ENTRY_BYTES and i + 1 < len(lines):
            yield seq + start, b"\n".join(lines[start:i + 1]) + b"\n", False
            start, size = i + 1, 0
    tail = b"\n".join(lines[start:])
    yield seq + start, tail + b"\n" if batch.terminated else tail, not batch.terminated


@hookimpl(trylast=True)
def log_sinks(execution, runtime):
    cfg = runtime.config
    sinks = []
    if runtime.console:
        sinks.append(TerminalSink())
    if cfg["logs.redis"]:
        sinks.append(RedisStreamSink(runtime.store, execution.execution_id,
                                     max_entries=cfg["logs.redis_max_entries"], ttl=cfg["logs.redis_ttl"]))
    if cfg["logs.file"]:
        sinks.append(FileSink(log_file(cfg, execution.execution_id)))
    return sinks
