"""The dashboard's deployments and fleet pages and their data, against the real test Redis (no
Docker job runs): state is written with cronium's own code (deploy, queue, heartbeats, lease), the
fleet figures are compared with what the Prometheus metrics render for the same state, and the
pages are requested with Sanic's test client."""
from __future__ import annotations

import html
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


def _queue_with_a_dead_letter(qruntime, tmp_path, submitted: int, reader: str, reason: str):
    """Deploy `check`, submit it `submitted` times, dead-letter the first entry `reader` reads:
    (the queue, the dead entry's fields)."""
    from cronium.core.fleet.queue import Queue

    deploy(qruntime, tmp_path)
    queue = Queue(qruntime.store, qruntime.config)
    for _ in range(submitted):
        queue.submit("check", submitted_by="test")
    queue.ensure_group()
    (entry, fields, deliveries), = queue.read(reader, count=1, block_ms=10)
    queue.dead_letter(entry, fields, reason, deliveries)
    return queue, fields


def test_fleet_figures_equal_what_the_metrics_render(qruntime, tmp_path):
    from cronium.core.dashboard.fleet_data import fleet_snapshot
    from cronium.core.fleet.metrics import CroniumMetrics

    store, config = qruntime.store, qruntime.config
    queue, fields = _queue_with_a_dead_letter(qruntime, tmp_path, 3, "w-1.1-1.abc", "test: poisoned")
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


# --- the pages ----------------------------------------------------------------------------------

ADMIN = "admin-token-" + "a" * 20
READONLY = "readonly-token-" + "r" * 20
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def dash(qconfig, qruntime):
    """make(**config flags) -> a dashboard app over the test's store (fresh key prefix)."""
    from cronium.core.config import load_config
    from cronium.core.dashboard.app import create_app

    def make(**flags):
        config = load_config(config_file=qconfig, flags=flags, use_user_config=False, environ={})
        return create_app(config, store=qruntime.store)

    return make


def _get(app, path, **kwargs):
    kwargs.setdefault("headers", {}).setdefault("accept", "text/html")
    _, response = app.test_client.get(path, **kwargs)
    return response


def _post(app, path, **kwargs):
    kwargs.setdefault("headers", {}).setdefault("accept", "text/html")
    _, response = app.test_client.post(path, allow_redirects=False, **kwargs)
    return response


def _admin_session(app) -> tuple[dict, str]:
    """The cookies and CSRF token of a browser on the open (loopback, no token) dashboard."""
    page = _get(app, "/deployments")
    return dict(page.cookies), re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def _queued(runtime) -> list[dict]:
    """The entries of the queue stream, as Redis holds them."""
    with runtime.store.guard():
        entries = runtime.store.redis.xrange(runtime.store.keys.queue)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def test_deployments_page_shows_schedules_runs_policy_and_graph(dash, qruntime, tmp_path):
    from cronium.core.cli.display import when_in
    from cronium.core.dashboard.deployments_data import next_runs
    from cronium.core.deploy.registry import DeploymentRegistry
    from cronium.core.fleet.queue import Queue

    deploy(qruntime, tmp_path)
    ran = Queue(qruntime.store, qruntime.config).submit("check", submitted_by="test").execution_id
    page = _get(dash(), "/deployments")
    assert page.status == 200
    upcoming, _ = next_runs(DeploymentRegistry(qruntime.store).job("report"), time.time())
    assert when_in(upcoming[0], "Europe/Berlin") in page.text  # shown with the zone's abbreviation
    assert re.search(r"CES?T", page.text) and "time zone Europe/Berlin" in page.text
    assert f'href="/executions/{ran}"' in page.text and "forbid" in page.text
    graph = page.text[page.text.index("<svg"):page.text.index("</svg>")]
    assert graph.count("<rect") == 3 and "condition_true" in graph and "always" in graph
    assert page.text.count("Run now</button>") == 4


def test_a_hostile_job_name_renders_as_text_in_the_table_and_the_graph(dash, qruntime):
    from cronium.core.deploy.definition import Deployment, Edge, JobDefinition
    from cronium.core.deploy.registry import DeploymentRegistry

    # Deployment files refuse such a name; a store written by another tool (or an older version)
    # may still hold one, and the page must not trust it.
    evil = JobDefinition(name=HOSTILE, deployment="evil", job_type="container", image="alpine",
                         description='"><img src=x onerror=alert(2)>')
    victim = JobDefinition(name="victim", deployment="evil", job_type="container", image="alpine",
                           after=(Edge(HOSTILE, "always"),))
    DeploymentRegistry(qruntime.store).register(Deployment(name="evil", path="evil.toml", source="",
                                                           jobs={HOSTILE: evil, "victim": victim}, scripts={}))
    app = dash()
    text = _get(app, "/deployments").text
    assert "<script>alert" not in text and "<img" not in text
    escaped = html.escape(HOSTILE, quote=False)
    table, graph = text[text.index('id="jobs"'):text.index("</table>")], text[text.index("<svg"):]
    assert escaped in table and escaped in graph
    assert f'name="job" value="{html.escape(HOSTILE)}"' in table
    cookies, csrf = _admin_session(app)
    ran = _post(app, "/deployments/run", data={"csrf": csrf, "job": HOSTILE}, cookies=cookies)
    assert ran.status == 303 and _queued(qruntime)[0]["job"] == HOSTILE


def test_run_now_enqueues_one_run_as_submit_does(dash, qruntime, tmp_path):
    deploy(qruntime, tmp_path)
    app = dash()
    cookies, csrf = _admin_session(app)
    posted = _post(app, "/deployments/run", data={"csrf": csrf, "job": "check"}, cookies=cookies)
    assert posted.status == 303
    execution_id = posted.headers["location"].rsplit("/", 1)[1]
    assert _queued(qruntime) == [{"execution": execution_id, "job": "check"}]
    rec = qruntime.store.records.get(execution_id)
    assert (rec["status"], rec["trigger"], rec["job_id"]) == ("queued", "manual", "check")
    assert rec["metadata"]["submitted_by"].startswith("dashboard (admin)")

    # The job's concurrency policy holds as for `cronium submit`: report is forbid.
    assert _post(app, "/deployments/run", data={"csrf": csrf, "job": "report"}, cookies=cookies).status == 303
    refused = _post(app, "/deployments/run", data={"csrf": csrf, "job": "report"}, cookies=cookies)
    assert refused.status == 409 and "concurrency" in refused.text
    assert len(_queued(qruntime)) == 2
    missing = _post(app, "/deployments/run", data={"csrf": csrf, "job": "nope"}, cookies=cookies)
    assert missing.status == 404 and "Traceback" not in missing.text
    nameless = _post(app, "/deployments/run", data={"csrf": csrf}, cookies=cookies)
    assert nameless.status == 400 and "names no job" in nameless.text and len(_queued(qruntime)) == 2


def test_run_now_without_the_csrf_token_is_refused(dash, qruntime, tmp_path):
    deploy(qruntime, tmp_path)
    app = dash()
    cookies, csrf = _admin_session(app)
    for data in ({"job": "check"}, {"job": "check", "csrf": "0" * len(csrf)}):
        refused = _post(app, "/deployments/run", data=data, cookies=cookies)
        assert refused.status == 403 and "CSRF" in refused.text
    assert _queued(qruntime) == []


def test_the_read_only_role_may_look_but_not_run(dash, qruntime, tmp_path):
    deploy(qruntime, tmp_path)
    app = dash(**{"dashboard.admin_token": ADMIN, "dashboard.readonly_token": READONLY})
    page = _get(app, "/deployments", headers={"authorization": f"Bearer {READONLY}"})
    assert page.status == 200 and "check" in page.text and "Run now" not in page.text
    refused = _post(app, "/deployments/run", data={"job": "check"}, headers={"authorization": f"Bearer {READONLY}"})
    assert refused.status == 403
    assert _post(app, "/deployments/run", data={"job": "check"}).status in (401, 303)  # not logged in: never enqueued
    assert _queued(qruntime) == []
    ran = _post(app, "/deployments/run", data={"job": "check"}, headers={"authorization": f"Bearer {ADMIN}"})
    assert ran.status == 303 and len(_queued(qruntime)) == 1


def test_fleet_page_shows_the_metrics_figures(dash, qruntime, tmp_path):
    from cronium.core.fleet.metrics import CroniumMetrics

    store = qruntime.store
    queue, _ = _queue_with_a_dead_letter(qruntime, tmp_path, 2, "w-9.1-1.abc", "<b>poison</b>")
    store.owners.beat("w-9.1-1.abc", 30, {"kind": "worker", "host": "node-z", "running": 0, "concurrency": 3,
                                           "warm_pool": {"sidecar-pool": 1, "slots": 2}})
    store.schedules.take_lease("sched-owner", 30000)
    store.records.create("exec_00000000000000f1", {"id": "exec_00000000000000f1", "job_id": "check",
                                                   "status": "succeeded", "created_at": time.time() - 5,
                                                   "timings": {"job": 1.5, "cleanup": 0.2}},
                         created_at=time.time() - 5)
    text = _get(dash(), "/fleet").text
    metrics = _metric_samples(CroniumMetrics(queue).render())
    shown = dict(re.findall(r'data-metric="(cronium_\w+)">(\d+)<', text))
    assert len(shown) == 5 and {k: float(v) for k, v in shown.items()} == \
        {k: v for k, v in metrics.items() if k in shown}
    assert shown["cronium_queue_dead_letters"] == "1"
    workers = text[text.index('id="workers"'):text.index("</table>", text.index('id="workers"'))]
    assert "node-z" in workers and "3 idle (sidecar-pool 1, slots 2)" in workers
    assert "sched-owner" in text and "&lt;b&gt;poison&lt;/b&gt;" in text and "<b>poison" not in text
    assert text.count("<svg") == 2 and "cleanup: mean 200ms over 1 execution(s)" in text
