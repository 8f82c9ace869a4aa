"""The reaper: removes what crashed orchestrators left behind, never a live job's resources.

The core only decides; plugins do the work. `reap()` builds a `SweepJudgement` (core/owners.py:
owner dead — by pid on this host, by heartbeat elsewhere — or deadline passed; never this process's
own resources, never another installation's) and calls the `reap_orphans` hook, through which each
plugin finds its own resources (containers, networks, volumes, firewall rules, Redis ACL users, …),
asks the judgement about each and removes the orphaned ones. Then the core marks lost the records
of the executions it condemned, and sweeps the records: executions still pending or running whose
owner is gone become `lost` too (even with nothing left to remove).

`cronium gc` runs this by hand (`--dry-run` only reports); `cronium run`, workers and the scheduler
run it in the background when they start, workers also every `worker.reap_interval` seconds.
`remove_execution_resources()` goes through the same hook with a judgement that selects one
execution (a worker re-running an execution whose owner died).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .errors import StoreUnavailable
from .model import LIVE_STATUSES
from .owners import HEARTBEAT_TTL, ExecutionJudgement, Judgement, SweepJudgement


@dataclass
class ReapReport:
    """What a sweep removed (or, in a dry run, would remove), which executions it marked lost,
    what it kept and what failed. Plugins append `"<kind> <name>"` entries in `reap_orphans`."""

    removed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"removed": self.removed, "lost": self.lost, "kept": self.kept, "errors": self.errors,
                "dry_run": self.dry_run}


def reap_through_plugins(runtime: Any, judge: Judgement, *, dry_run: bool) -> ReapReport:
    """Call `reap_orphans` on every plugin with this judgement; a plugin that raises is an error."""
    report = ReapReport(dry_run=dry_run)
    for name, exc in runtime.hooks.reap_orphans(judge=judge, dry_run=dry_run, report=report, runtime=runtime):
        report.errors.append(f"plugin {name} failed in reap_orphans: {type(exc).__name__}: {exc}")
    return report


def reap(runtime: Any, *, dry_run: bool = False, now: float | None = None) -> ReapReport:
    """One sweep: every plugin's orphans, then the execution records."""
    now = time.time() if now is None else now
    judge = SweepJudgement(runtime, now=now)
    report = reap_through_plugins(runtime, judge, dry_run=dry_run)
    for execution, verdict in sorted(judge.condemned.items()):
        _mark_lost(runtime, execution, verdict.reason, report, owner=verdict.owner, dry_run=dry_run)
    if judge.owners.redis_ok:
        _sweep_records(runtime, judge, now, report, dry_run)
    return report


def remove_execution_resources(runtime: Any, execution: str) -> ReapReport:
    """Remove every resource of one execution, whoever owned it (`report.removed` lists them).
    Used by a worker before it runs an execution again whose previous owner died."""
    return reap_through_plugins(runtime, ExecutionJudgement(execution), dry_run=False)


def _mark_lost(runtime: Any, execution: str, why: str, report: ReapReport, *, owner: str, dry_run: bool) -> None:
    """Atomically: only while the record is still live *and* still owned by the dead owner (a
    worker may have claimed the execution again in the meantime)."""
    if execution in report.lost:
        return
    try:
        if dry_run:
            record = runtime.store.records.values(execution, ("status", "owner"))
            if record.get("status") in LIVE_STATUSES and record.get("owner", "") == owner:
                report.lost.append(execution)
        elif runtime.store.records.mark_lost(execution, owner=owner, error=f"lost: {why}", statuses=LIVE_STATUSES):
            report.lost.append(execution)
    except StoreUnavailable as exc:
        report.errors.append(f"record of {execution}: {exc}")


def _sweep_records(runtime: Any, judge: SweepJudgement, now: float, report: ReapReport, dry_run: bool) -> None:
    """Executions still pending/running in Redis whose owner is gone (even with nothing left to remove)."""
    ttl = runtime.config.get("heartbeat.ttl", HEARTBEAT_TTL)
    try:
        rows = runtime.store.records.live()
    except StoreUnavailable:
        return
    fresh = now - ttl
    for row in rows:
        if row["created_at"] is not None and row["created_at"] > fresh:
            continue  # too new to judge: its owner may not have beaten yet
        if row["id"] in report.lost or judge.owners.alive(row["owner"]):
            continue
        _mark_lost(runtime, row["id"], "its owner died", report, owner=row["owner"], dry_run=dry_run)
