"""The data of the dashboard's deployments and fleet pages, against the real test Redis (no Docker
job runs): state is written with cronium's own code (deploy, queue, heartbeats, lease), and the
figures are compared with what the Prometheus metrics render for the same state."""
from __future__ import annotations

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.integration

WORKFLOW = """
[deployment]
name = "dash-data"

[jobs.report]
type = "python"
inline = "print('report')"
schedule = "0 7 * * MON-FRI"
timezone = "Europe/Berlin"
concurrency = "forbid"

[jobs.check]
type = "python"
inline = "print('check')"

[jobs.notify]
type = "python"
inline = "print('notify')"
after = { job = "check", when = "condition_true" }

[jobs.cleanup]
type = "python"
inline = "print('cleanup')"
after = [{ job = "check", when = "failed" }, { job = "notify", when = "always" }]
"""


def deploy(runtime, tmp_path, text: str = WORKFLOW):
    """Validate and register a deployment file the way `cronium deploy` does."""
    from cronium.core.deploy.files import load_deployment
    from cronium.core.deploy.registry import DeploymentRegistry

    path = tmp_path / "deploy.toml"
    path.write_text(text)
    deployment = load_deployment(path, runtime.config)
    DeploymentRegistry(runtime.store).register(deployment, shared_namespace=runtime.config["namespace"])
    return deployment


def test_jobs_show_next_runs_in_their_time_zone_last_runs_and_edges(qruntime, tmp_path):
    from cronium.core.dashboard.deployments_data import WorkflowEdge, deployments_view
    from cronium.core.fleet.queue import Queue

    deploy(qruntime, tmp_path)
    queue = Queue(qruntime.store, qruntime.config)
    first = queue.submit("check", submitted_by="test").execution_id
    second = queue.submit("check", submitted_by="test").execution_id
    now = time.time()
    view = deployments_view(qruntime.store, now)
    jobs = {j.name: j for j in view.jobs}
    assert set(jobs) == {"report", "check", "notify", "cleanup"}

    report = jobs["report"]
    assert report.job.concurrency == "forbid" and report.schedule_error is None
    assert len(report.next_runs) == 5 and report.next_runs == sorted(set(report.next_runs))
    assert report.next_runs[0] > now
    for ts in report.next_runs:  # 07:00 Berlin wall time on a weekday, whatever the UTC offset
        local = datetime.fromtimestamp(ts, ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute, local.second) == (7, 0, 0) and local.isoweekday() <= 5
    assert jobs["check"].next_runs == []

    assert [r["id"] for r in jobs["check"].last_runs] == [second, first]
    assert {r["status"] for r in jobs["check"].last_runs} == {"queued"}
    assert jobs["notify"].last_runs == []
    assert view.edges == [WorkflowEdge("check", "cleanup", "failed"), WorkflowEdge("check", "notify", "condition_true"),
                          WorkflowEdge("notify", "cleanup", "always")]


def test_a_suspended_or_broken_schedule_has_no_next_runs(qruntime, tmp_path):
    from cronium.core.dashboard.deployments_data import next_runs
    from cronium.core.deploy.definition import JobDefinition

    job = JobDefinition(name="j", deployment="d", job_type="python", schedule="@every 10s")
    assert next_runs(job, 1000.0, 3) == ([1010.0, 1020.0, 1030.0], None)
    assert next_runs(JobDefinition(name="j", deployment="d", job_type="python", schedule="@every 10s",
                                   suspend=True), 1000.0) == ([], None)
    runs, error = next_runs(JobDefinition(name="j", deployment="d", job_type="python", schedule="61 * * * *"), 0)
    assert runs == [] and "61" in error


def _metric_samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        match = re.match(r"^(cronium_(?:queue|heartbeat)\w*)(\{[^}]*\})? (\S+)$", line)
        if match:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def test_fleet_figures_equal_what_the_metrics_render(qruntime, tmp_path):
    from cronium.core.dashboard.fleet_data import fleet_snapshot
    from cronium.core.fleet.metrics import CroniumMetrics
    from cronium.core.fleet.queue import Queue

    store, config = qruntime.store, qruntime.config
    deploy(qruntime, tmp_path)
    queue = Queue(store, config)
    for _ in range(3):
        queue.submit("check", submitted_by="test")
    queue.ensure_group()
    (entry, fields, deliveries), = queue.read("w-1.1-1.abc", count=1, block_ms=10)
    queue.dead_letter(entry, fields, "test: poisoned", deliveries)
    store.owners.beat("w-1.1-1.abc", 30, {"kind": "worker", "host": "node-a", "running": 1, "concurrency": 4,
                                           "started": time.time() - 60, "warm_pool": {"sidecar-pool": 2}})
    store.owners.beat("s-1.2-1.def", 30, {"kind": "scheduler", "host": "node-b"})
    store.schedules.take_lease("s-1.2-1.def", 30000)

    snap = fleet_snapshot(store, config)
    metrics = _metric_samples(CroniumMetrics(queue).render())
    for name, _, value in snap.queue:
        assert metrics[name] == value, name
    assert (snap.figure("cronium_queue_length"), snap.figure("cronium_queue_pending"),
            snap.figure("cronium_queue_dead_letters")) == (2, 0, 1)
    (worker,) = snap.workers
    assert (worker.host, worker.running, worker.concurrency, worker.warm_total) == ("node-a", 1, 4, 2)
    for proc in snap.workers + snap.others:
        key = (f'cronium_heartbeat_timestamp_seconds{{owner="{proc.owner}",kind="{proc.kind}",'
               f'host="{proc.host}"}}')
        assert metrics[key] == pytest.approx(proc.heartbeat_at)
    assert [p.kind for p in snap.others] == ["scheduler"]
    assert snap.leader == "s-1.2-1.def"
    assert [(d["execution"], d["reason"]) for d in snap.dead_letters] == [(fields["execution"], "test: poisoned")]


def test_activity_counts_per_minute_and_averages_phases_within_its_bound(qruntime):
    from cronium.core.dashboard.fleet_data import activity

    store = qruntime.store
    now = time.time()
    made = [("exec_00000000000000a1", now - 30, {"job": 2.0, "token": 0.01}),
            ("exec_00000000000000a2", now - 20, {"job": 4.0}),
            ("exec_00000000000000a3", now - 590, {"job": 6.0, "cleanup": 0.5}),
            ("exec_00000000000000a4", now - 7200, {"job": 100.0})]  # outside the hour
    for execution_id, created, timings in made:
        store.records.create(execution_id, {"id": execution_id, "job_id": "j", "status": "succeeded",
                                            "created_at": created, "timings": timings}, created_at=created)
    act = activity(store, now)
    assert len(act.per_minute) == 60 and sum(act.per_minute) == 3
    assert act.per_minute[-1] == 2 and act.per_minute[-10] == 1
    assert act.phase_means == [("token", 0.01, 1), ("job", 4.0, 3), ("cleanup", 0.5, 1)]
    assert not act.truncated

    bounded = activity(store, now, limit=2)
    assert bounded.executions == 2 and bounded.truncated and sum(bounded.per_minute) == 2
