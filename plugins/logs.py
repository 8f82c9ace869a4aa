"""Built-in plugin `logs`: the sinks for job output — terminal, Redis stream, file.

- terminal (`cronium.core.console.TerminalSink`): stdout to our stdout, stderr to our stderr (in red
  where `core.color` allows), flushed per batch; on a terminal, control characters are shown escaped
  (config `logs.terminal_escape`: `auto`, `always`, `never`); into a pipe or a file, the exact bytes.
- Redis stream `P logs:<execution>`: one entry per run of lines (fields seq, stream, data,
  partial), approximately trimmed to `logs.redis_max_entries`, closed with an `eof` entry. Its
  expiry (`logs.redis_ttl` seconds) is set with the first entry and renewed with every write, so
  the stream of an owner that crashed expires too.
- file `<logs.dir>/<execution>.log`: the exact bytes the job wrote, stdout and stderr interleaved
  in arrival order (binary and invalid UTF-8 preserved), mode 0600. The folder must belong to the
  user running cronium, and the file is opened without following a symlink and refused unless it
  is a plain file of that user with one link: a symlink or hard link planted in a shared folder
  cannot make cronium write (or truncate) another file.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Sequence

from cronium.core import hookimpl
from cronium.core.config import check_own_folder
from cronium.core.console import TerminalSink
from cronium.core.errors import PhaseError
from cronium.core.logs import LogBatch, log_file

#: Upper bound of the data in one Redis stream entry.
REDIS_ENTRY_BYTES = 512 * 1024


class FileSink:
    name = "file"

    def __init__(self, path: Path):
        check_log_dir(path.parent)
        fd = open_log_file(path)
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
        self.logs.append(self.execution_id, entries, max_entries=self.max_entries, ttl=self.ttl)

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


def check_log_dir(folder: Path) -> None:
    """Create the folder (0700) if missing; refuse one that is not a folder of this user (checked
    again here: the folder may have changed since the configuration was loaded)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_own_folder(folder, key="logs.dir")


def open_log_file(path: Path) -> int:
    """Open (create) the log file for writing, truncated, mode 0600 — never through a symlink,
    never a file of another user or with other names (hard links)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise PhaseError("logs", f"could not open the log file '{path}': {exc.strerror}"
                         + (" (it is a symlink: refused)" if path.is_symlink() else ""),
                         hint="remove what is at that path, or set logs.dir to a folder of your own") from None
    held = os.fstat(fd)
    if not stat.S_ISREG(held.st_mode) or held.st_uid != os.geteuid() or held.st_nlink != 1:
        os.close(fd)
        raise PhaseError("logs", f"the log file '{path}' already exists and is not a plain file of this user "
                                 "with a single link: refused", hint="remove it, or set logs.dir to a folder of your own")
    os.ftruncate(fd, 0)
    os.fchmod(fd, 0o600)  # also when the file already existed with other permissions
    return fd


@hookimpl(trylast=True)
def log_sinks(execution, runtime):
    cfg = runtime.config
    sinks = []
    if runtime.console:
        sinks.append(TerminalSink(escape=cfg["logs.terminal_escape"]))
    if cfg["logs.redis"]:
        sinks.append(RedisStreamSink(runtime.store, execution.execution_id,
                                     max_entries=cfg["logs.redis_max_entries"], ttl=cfg["logs.redis_ttl"]))
    if cfg["logs.file"]:
        sinks.append(FileSink(log_file(cfg, execution.execution_id)))
    return sinks
