"""Retention: remove finished executions — record, index entries, log stream, log file — by age
and by count.

A policy removes an execution when it has ended (succeeded, failed, timed_out, oom_killed,
cancelled, error; `lost` only when no queue can run it again) and it was created more than
`max_age` seconds ago or is not among the newest `max_count` executions. Queued, pending and
running executions are never removed (the store checks the status atomically at removal).

`prune` works in pages of `batch` executions, oldest first. `cronium prune` runs every page; a
worker runs one page per `retention.interval` (cheap and bounded), carrying `next_offset` over so
that old executions that must stay (still queued, say) never stall it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .config import parse_duration
from .errors import UsageError
from .logs import log_file
from .model import EXECUTION_ID_RE


@dataclass(frozen=True)
class RetentionPolicy:
    """`max_age` seconds (0: no age limit), `max_count` newest executions kept (None: no count
    limit; 0 keeps none)."""

    max_age: float = 0.0
    max_count: int | None = None

    @property
    def active(self) -> bool:
        return self.max_age > 0 or self.max_count is not None

    @classmethod
    def from_config(cls, cfg) -> "RetentionPolicy":
        """The configured policy; `retention.max_count` 0 means no count limit there."""
        return cls(max_age=parse_duration(cfg["retention.max_age"]), max_count=cfg["retention.max_count"] or None)

    @classmethod
    def from_options(cls, cfg, older_than: str | None, keep: int | None) -> "RetentionPolicy":
        """`cronium prune` options; with neither, the configured policy. Bad values: `UsageError`."""
        if older_than is None and keep is None:
            policy = cls.from_config(cfg)
            if not policy.active:
                raise UsageError("nothing to prune by: retention.max_age and retention.max_count are both off",
                                 hint="give --older-than (e.g. 7d) or --keep N, or set retention.max_age / "
                                      "retention.max_count")
            return policy
        try:
            age = parse_duration(older_than) if older_than is not None else 0.0
        except ValueError:
            raise UsageError(f"--older-than {older_than!r} is not a duration",
                             hint="use a number with s, m, h, d or w, e.g. --older-than 7d") from None
        if older_than is not None and age <= 0:
            raise UsageError("--older-than must be more than 0", hint="e.g. --older-than 7d")
        if keep is not None and keep < 0:
            raise UsageError(f"--keep {keep} is negative", hint="give the number of newest executions to keep, e.g. --keep 100")
        return cls(max_age=age, max_count=keep)


@dataclass
class PruneReport:
    removed: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: Where the next bounded pass starts (0: this pass reached the end).
    next_offset: int = 0

    def as_dict(self) -> dict:
        return {"removed": self.removed, "files": self.files, "errors": self.errors, "dry_run": self.dry_run}


def prune(runtime, policy: RetentionPolicy, *, dry_run: bool = False, batch: int | None = None,
          max_pages: int = 0, offset: int = 0, now: float | None = None) -> PruneReport:
    """Apply `policy` to the store of `runtime` (and its log files), `batch` executions per page,
    at most `max_pages` pages (0: all), starting `offset` executions from the oldest."""
    report = PruneReport(dry_run=dry_run)
    if not policy.active:
        return report
    records, cfg = runtime.store.records, runtime.config
    batch = batch or cfg["retention.batch"] or 500
    before = (now or time.time()) - policy.max_age if policy.max_age else None
    keep = policy.max_count
    pages = 0
    while True:
        ids = records.retention_candidates(created_before=before, keep_newest=keep, offset=offset, limit=batch)
        if not ids:
            offset = 0
            break
        removed = records.remove_finished(ids, dry_run=dry_run)
        report.removed += removed
        _remove_log_files(cfg, removed, report)
        offset += len(ids) - (0 if dry_run else len(removed))
        pages += 1
        if max_pages and pages >= max_pages:
            break
    report.next_offset = offset
    return report


def _remove_log_files(cfg, execution_ids: list[str], report: PruneReport) -> None:
    for execution_id in execution_ids:
        if not EXECUTION_ID_RE.match(execution_id):
            continue  # never build a path from anything but an execution id
        path = log_file(cfg, execution_id)
        try:
            if report.dry_run:
                path.lstat()  # FileNotFoundError when there is none
            else:
                path.unlink()  # a symlink itself, never its target
            report.files.append(str(path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            report.errors.append(f"log file {path}: {exc}")
