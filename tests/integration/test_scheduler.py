"""The scheduler against a real Redis (and, under `cronium serve`, the real engine): runs on time,
one leader with fail-over, each fire time enqueued exactly once, concurrency policies, metrics."""
from __future__ import annotations

import re
import signal
import time
import urllib.request

import pytest
from integration_util import REPO
from ports import free_port
from queue_util import deploy_text, job_records, owner_pid, wait_for

pytestmark = pytest.mark.integration


def test_example_schedule_runs_on_time_under_serve(qcli, qruntime, processes, tmp_path):
    # The shipped example, with its weekday-morning schedule swapped for one every 3 seconds.
    example = (REPO / "config" / "deployments" / "scheduled-report.toml").read_text()
    text = example.replace('schedule = "0 7 * * MON-FRI"', 'schedule = "@every 3s"')
    text = text.replace('concurrency = "forbid"', 'concurrency = "allow"')
    assert "@every 3s" in text
    (tmp_path / "scripts").mkdir()  # scripts live in the deployment file's folder
    (tmp_path / "scripts" / "report.py").write_bytes((REPO / "config" / "deployments" / "scripts" / "report.py").read_bytes())
    deploy_text(qcli, tmp_path, text, name="report.toml")
    port = free_port()
    serve = processes.start("serve", "--concurrency", "3", "--metrics-port", str(port))

    def three_done():
        done = [r for r in job_records(qruntime, "daily-report") if r["status"] == "succeeded"]
        return done if len(done) >= 3 else None

    wait_for(three_done, 90, "three scheduled runs to succeed", interval=0.5, logs=processes.logs)
    records = [r for r in job_records(qruntime, "daily-report") if r.get("scheduled_for")]
    fire_times = [r["scheduled_for"] for r in records]
    # Every 3 s on the dot (aligned fire times), none skipped, none twice; each enqueued on time.
    assert all(t % 3 == 0 for t in fire_times)
    assert [b - a for a, b in zip(fire_times, fire_times[1:])] == [3.0] * (len(fire_times) - 1)
    assert all(0 <= r["queued_at"] - r["scheduled_for"] < 10 for r in records)  # generous: machines are noisy
    assert all(r["trigger"] == "schedule" and r["metadata"]["scheduled_for"] for r in records)
    listing = qcli("jobs", "list", "--job", "daily-report").stdout.decode()
    finished = [r["id"] for r in records if r["status"] == "succeeded"]
    for execution in finished:
        assert re.search(rf"{execution}\s+daily-report\s+succeeded\s+schedule", listing), listing
    output = qcli("logs", finished[0]).stdout.decode()
    assert "for eu-central (text), trigger schedule" in output

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    counted = re.search(r'^cronium_executions_total\{job="daily-report",status="succeeded"\} (\d+)$', metrics, re.M)
    assert counted and int(counted.group(1)) >= 3
    assert re.search(r'^cronium_phase_duration_seconds_bucket\{phase="sidecar",le="\+Inf"\} \d+$', metrics, re.M)
    assert re.search(r'^cronium_scheduler_enqueued_total\{job="daily-report"\} \d+$', metrics, re.M)
    assert re.search(r"^cronium_queue_length \d+$", metrics, re.M)
    assert re.search(r"^cronium_scheduler_leader 1$", metrics, re.M)
    beat = re.search(rf'^cronium_heartbeat_timestamp_seconds\{{owner="[^"]+\.{serve.pid}-[0-9]+\.[0-9a-f]+",kind="worker",'
                     rf'host="[^"]+"\}} ([0-9.e+]+)$', metrics, re.M)
    assert beat and abs(float(beat.group(1)) - time.time()) < 60
    assert processes.stop(serve) == 0, processes.logs()


def test_two_schedulers_enqueue_each_fire_time_once_and_fail_over(qcli, qruntime, processes, tmp_path):
    deploy_text(qcli, tmp_path, '[jobs.tick]\ntype = "bash"\ninline = "true"\nschedule = "@every 1s"\n')
    first, second = processes.start("scheduler"), processes.start("scheduler")
    by_pid = {first.pid: first, second.pid: second}
    store = qruntime.store

    def fire_times() -> list[float]:
        return [r["scheduled_for"] for r in job_records(qruntime, "tick")]

    wait_for(lambda: len(fire_times()) >= 4, 60, "the leader to enqueue 4 runs", logs=processes.logs)
    leader = store.redis.get(store.keys.scheduler_lease).decode()
    assert owner_pid(leader) in by_pid
    before = len(fire_times())
    by_pid[owner_pid(leader)].send_signal(signal.SIGKILL)
    killed_at = time.time()

    def new_leader():
        holder = store.redis.get(store.keys.scheduler_lease)
        return holder is not None and holder.decode() != leader and holder.decode()

    successor = wait_for(new_leader, 30, "the standby to take the lease", logs=processes.logs)
    print(f"\nscheduler fail-over: {time.time() - killed_at:.1f}s (lease_ttl 3s)")
    wait_for(lambda: max(fire_times()) > killed_at + 3, 30, "the new leader to enqueue", logs=processes.logs)
    assert processes.stop(by_pid[owner_pid(successor)]) == 0
    times = fire_times()
    assert len(times) > before + 3
    # Every fire time from the first to the last, each exactly once — across the fail-over.
    assert len(set(times)) == len(times)
    assert sorted(times) == [times[0] + i for i in range(len(times))]
    # One stream entry per execution (no worker ran: all still queued), and the lease was released.
    assert store.redis.xlen(store.keys.queue) == len(times)
    assert store.redis.get(store.keys.scheduler_lease) is None


def test_forbid_skips_overlap_and_replace_cancels_the_old_run(qcli, qruntime, processes, tmp_path):
    deploy_text(qcli, tmp_path, """
[jobs.hold-forbid]
type = "bash"
inline = "echo start; sleep 6; echo end"
schedule = "@every 2s"
concurrency = "forbid"

[jobs.hold-replace]
type = "bash"
inline = "echo start; sleep 60"
schedule = "@every 5s"
concurrency = "replace"
""")
    processes.start("serve", "--concurrency", "4")

    def forbid_done():
        records = job_records(qruntime, "hold-forbid")
        return len([r for r in records if r["status"] == "succeeded"]) >= 2 and records

    def replaced():
        records = job_records(qruntime, "hold-replace")
        cancelled = [r for r in records if r["status"] == "cancelled" and "replaced by" in (r.get("error") or "")]
        return cancelled and records

    forbid = wait_for(forbid_done, 120, "two forbid runs", interval=0.5, logs=processes.logs)
    replace = wait_for(replaced, 60, "a replaced run", interval=0.5, logs=processes.logs)
    # forbid: fire times came every 2 s, runs take 6+ s: some fire times were skipped, and no two
    # runs overlapped (each started after the previous one ended).
    store = qruntime.store
    state = store.redis.hgetall(store.keys.schedule_state("hold-forbid"))
    assert int(state[b"skipped"]) >= 2
    finished = [r for r in forbid if r["status"] == "succeeded"]
    for earlier, later in zip(finished, finished[1:]):
        assert later["started_at"] > earlier["finished_at"]
    assert all(r["status"] in ("queued", "pending", "running", "succeeded") for r in forbid)
    # replace: the old run was cancelled by the next fire time, which ran instead.
    old = [r for r in replace if r["status"] == "cancelled"][0]
    newer = old["error"].split("replaced by ")[1].split()[0]
    assert newer in {r["id"] for r in replace}
    assert store.records.get(newer)["scheduled_for"] > old["scheduled_for"]
    assert old["started_at"] is not None  # it was running, not just queued, when replaced
