"""What the deployments page shows, read from the store: each deployed job with its next fire
times (the scheduler's own `Schedule.next_after`, through `cron.next_fire_times`), its last runs,
its concurrency policy, and the workflow edges between jobs.

Last runs come from the newest `RECENT_SCAN` entries of the `P executions` index (one bounded read
for all jobs, never a SCAN); a job whose runs are older than that shows none.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..deploy.cron import ScheduleError, next_fire_times
from ..deploy.definition import JobDefinition
from ..deploy.registry import DeploymentRegistry

if TYPE_CHECKING:
    from ..store import Store

#: Fire times shown per scheduled job.
NEXT_RUNS = 5
#: Runs shown per job.
LAST_RUNS = 5
#: How many of the newest executions are read to find the jobs' last runs.
RECENT_SCAN = 2000
#: Record fields a last run shows.
RUN_FIELDS = ("id", "job_id", "status", "trigger", "created_at", "finished_at", "attempt")


@dataclass(frozen=True)
class WorkflowEdge:
    """`child` runs after `parent` ends with `when` (an `Edge` seen from the graph)."""

    parent: str
    child: str
    when: str


@dataclass(frozen=True)
class JobView:
    job: JobDefinition
    next_runs: list[float]  # unix seconds; shown in `job.timezone`
    schedule_error: str | None
    last_runs: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.job.name


@dataclass(frozen=True)
class DeploymentsView:
    jobs: list[JobView]
    edges: list[WorkflowEdge]
    scanned: int  # executions read for the last runs


def next_runs(job: JobDefinition, now: float, count: int = NEXT_RUNS) -> tuple[list[float], str | None]:
    """The job's next `count` fire times after `now` ([] when it has no schedule or is suspended),
    and the schedule's error when it cannot be evaluated."""
    if not job.schedule or job.suspend:
        return [], None
    try:
        return next_fire_times(job.schedule, job.timezone, now, count), None
    except ScheduleError as exc:
        return [], str(exc)


def last_runs(store: "Store", jobs: set[str], *, per_job: int = LAST_RUNS,
              scan: int = RECENT_SCAN) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The newest `per_job` runs of each of `jobs` among the newest `scan` executions (newest
    first), and how many executions were read."""
    ids = store.records.window(count=scan)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in jobs}
    for row in store.records.summaries(ids, RUN_FIELDS):
        runs = found.get(row.get("job_id", ""))
        if runs is not None and len(runs) < per_job:
            runs.append(row)
    return found, len(ids)


def workflow_edges(jobs: list[JobDefinition]) -> list[WorkflowEdge]:
    """Every edge between deployed jobs (`after` is declared on the job that runs after)."""
    return sorted({WorkflowEdge(edge.job, job.name, edge.when) for job in jobs for edge in job.after},
                  key=lambda e: (e.parent, e.child, e.when))


def deployments_view(store: "Store", now: float | None = None) -> DeploymentsView:
    """Everything the deployments page shows, read now."""
    now = time.time() if now is None else now
    jobs = sorted(DeploymentRegistry(store).jobs(), key=lambda j: (j.deployment, j.name))
    runs, scanned = last_runs(store, {j.name for j in jobs})
    views = []
    for job in jobs:
        upcoming, error = next_runs(job, now)
        views.append(JobView(job, upcoming, error, runs[job.name]))
    return DeploymentsView(views, workflow_edges(jobs), scanned)
