"""The queue and workers against the real engine and a real Redis: exactly-once runs across workers,
take-over after a SIGKILL, cancel from anywhere, dead letters, retries and workflow edges."""
from __future__ import annotations

import json
import signal
import time

import pytest
from integration_util import REPO
from queue_util import deploy_text, job_records, owner_pid, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_three_workers_run_sixty_jobs_exactly_once(qcli, qruntime, processes, tmp_path, container_starts):
    from cronium.core.deploy.registry import DeploymentRegistry
    from cronium.core.fleet.queue import Queue

    deploy_text(qcli, tmp_path, '[jobs.quick]\ntype = "bash"\ninline = "echo run $CRONIUM_EXECUTION_ID"\n')
    starts = container_starts()
    workers = [processes.start("worker", "--concurrency", "2") for _ in range(3)]
    queue = Queue(qruntime.store, qruntime.config)
    job = DeploymentRegistry(qruntime.store).job("quick")
    ids = {queue.enqueue(job, input={"n": n}).execution_id for n in range(60)}
    assert len(ids) == 60

    def finished():
        records = job_records(qruntime, "quick")
        return len(records) == 60 and all(r["status"] in ("succeeded", "failed", "error") for r in records)

    wait_for(finished, 240, "60 executions to finish", interval=1.0, logs=processes.logs)
    records = job_records(qruntime, "quick")
    assert {r["id"] for r in records} == ids
    failed = [(r["id"], r["status"], r.get("error"), r.get("warnings")) for r in records if r["status"] != "succeeded"]
    assert failed == [], processes.logs()
    # Each execution was delivered once and its job container started exactly once.
    assert all(r["deliveries"] == "1" for r in records)
    assert sorted(s for s in starts.close() if s in ids) == sorted(ids)  # (other tests may share the engine)
    owners = {r["owner"] for r in records}
    assert len(owners) >= 2, f"one worker did everything: {owners}"
    assert owners <= {h["owner"] for h in qruntime.store.owners.heartbeats() if h["kind"] == "worker"}
    # Everything acknowledged (after each job's cleanup): the stream holds nothing, nothing is pending.
    wait_for(lambda: (lambda s: (s["length"], s["pending"]) == (0, 0))(queue.stats()), 30,
             "every entry to be acknowledged", logs=processes.logs)
    for worker in workers:
        assert processes.stop(worker) == 0, processes.logs()


def test_worker_killed_mid_job_is_taken_over(qcli, qruntime, processes, tmp_path, engine, docker_leftovers,
                                             container_starts):
    deploy_text(qcli, tmp_path, """
[jobs.slow]
type = "python"
inline = '''
import time, cronium
print("working", flush=True)
time.sleep(6)
cronium.output({"done": True})
'''
timeout = 120
""")
    starts = container_starts()
    workers = {p.pid: p for p in (processes.start("worker", "--concurrency", "1") for _ in range(2))}
    proc = qcli("submit", "slow")
    assert proc.returncode == 0, proc.stderr.decode()
    execution = proc.stdout.decode().strip()
    store = qruntime.store

    def running_record():
        rec = store.records.get(execution)
        return rec if rec["status"] == "running" else None

    first = wait_for(running_record, 90, "the job to run", logs=processes.logs)
    victim = first["owner"]
    assert owner_pid(victim) in workers
    time.sleep(1.0)  # well inside the job's 6 s
    killed_at = time.time()
    workers[owner_pid(victim)].send_signal(signal.SIGKILL)
    workers[owner_pid(victim)].wait()
    # What the dead worker was running is still there until someone reaps it.
    assert any(x.startswith("container cronium-job-") for x in docker_leftovers(execution))

    final = wait_for(lambda: (r := store.records.get(execution))["status"] == "succeeded" and r, 120,
                     "another worker to complete the job", logs=processes.logs)
    survivor = final["owner"]
    assert survivor != victim and owner_pid(survivor) in workers
    assert final["deliveries"] == "2" and final["output"] == {"done": True}
    assert [h["owner"] for h in final["history"]] == [victim]
    takeover = final["claimed_at"] - killed_at
    print(f"\ntake-over after SIGKILL: {takeover:.1f}s (heartbeat.ttl 5s, queue.claim_interval 1s)")
    # Exactly one record, succeeded once; the job ran twice (killed attempt + the completed one).
    records = job_records(qruntime, "slow")
    assert [(r["id"], r["status"]) for r in records] == [(execution, "succeeded")]
    assert [s for s in starts.close() if s == execution] == [execution, execution]
    # The dead worker's containers (its job's, and its idle pooled sidecars: the survivor's reaper
    # removes those within worker.reap_interval) and network are gone.
    label = {"label": f"cronium.owner={victim}"}
    wait_for(lambda: engine.api.containers(all=True, filters=label) == [], 30, "the dead worker's containers to go")
    assert engine.api.networks(filters=label) == []
    wait_for(lambda: docker_leftovers(execution) == [], 60, "the survivor's cleanup")
    # Its queue entry moved to the survivor and was acknowledged there.
    from cronium.core.fleet.queue import Queue

    wait_for(lambda: (lambda s: (s["length"], s["pending"]) == (0, 0))(Queue(store, qruntime.config).stats()), 30,
             "the entry to be acknowledged", logs=processes.logs)


def test_cancel_queued_and_running_from_another_process(qcli, qruntime, processes, tmp_path, docker_leftovers,
                                                        container_starts):
    deploy_text(qcli, tmp_path, '[jobs.long]\ntype = "bash"\ninline = "echo started; sleep 60"\ntimeout = 120\n')
    queued = qcli("submit", "long").stdout.decode().strip()
    out = qcli("cancel", queued)
    assert out.returncode == 0 and "cancelled (it was still queued)" in out.stdout.decode()
    starts = container_starts()
    processes.start("worker", "--concurrency", "1")
    running = qcli("submit", "long").stdout.decode().strip()
    store = qruntime.store
    wait_for(lambda: store.records.get(running)["status"] == "running", 90, "the job to run", logs=processes.logs)
    out = qcli("cancel", running, "--wait", "--timeout", "60")
    assert out.returncode == 0, out.stderr.decode()
    rec = store.records.get(running)
    assert rec["status"] == "cancelled" and "cronium cancel" in rec["error"]
    # The final status is written before cleanup; cleanup follows within seconds.
    wait_for(lambda: docker_leftovers(running) == [], 60, "the cancelled job's cleanup")
    # The queued one was acknowledged without ever starting a container.
    assert store.records.get(queued)["status"] == "cancelled"
    wait_for(lambda: (store.redis.xlen(store.keys.queue) == 0), 30, "the cancelled entry to be acknowledged")
    assert [s for s in starts.close() if s in (queued, running)] == [running]
    # Cancelling what already ended says so.
    again = qcli("cancel", running)
    assert again.returncode == 1 and "already ended (cancelled)" in again.stderr.decode()
    # A `cronium run` in another process is cancelled the same way.
    run = processes.start("run", str(REPO / "tests" / "integration" / "jobs" / "sleeper.py"))
    adhoc = wait_for(lambda: [r["id"] for r in store.records.latest(20) if r.get("status") == "running"
                              and owner_pid(r.get("owner") or "x.0.x") == run.pid],
                     90, "the cronium run to start", logs=processes.logs)[0]
    out = qcli("cancel", adhoc, "--wait", "--timeout", "60")
    assert out.returncode == 0, out.stderr.decode()
    assert run.wait(60) == 130
    assert store.records.get(adhoc)["error"].startswith("cancelled: cancelled with `cronium cancel`")


def test_poison_entry_goes_to_dead_letters(qcli, qruntime, processes, tmp_path, qconfig):
    from cronium.core.deploy.registry import DeploymentRegistry
    from cronium.core.fleet.queue import Queue

    deploy_text(qcli, tmp_path, '[jobs.poison]\ntype = "bash"\ninline = "true"\n')
    store = qruntime.store
    queue = Queue(store, qruntime.config)
    queue.ensure_group()
    execution = queue.enqueue(DeploymentRegistry(store).job("poison")).execution_id
    # Five workers that took it and died (no heartbeat): delivered five times already.
    ghost = "ghosthost.999999.dead01"
    [(_, [(entry, _)])] = store.redis.xreadgroup(queue.group, ghost, {store.keys.queue: ">"}, count=1)
    for _ in range(4):
        store.redis.xclaim(store.keys.queue, queue.group, ghost, 0, [entry])
    processes.start("worker")
    rec = wait_for(lambda: (r := store.records.get(execution))["status"] == "error" and r, 60,
                   "the entry to be dead-lettered", logs=processes.logs)
    assert "dead-lettered" in rec["error"] and "delivered 6 times" in rec["error"]
    out = qcli("queue", "dead", "--json")
    [dead] = json.loads(out.stdout)
    assert dead["execution"] == execution and dead["deliveries"] == "6" and "max_deliveries" in dead["reason"]
    assert store.redis.xlen(store.keys.queue) == 0


def test_retries_with_backoff_then_failure_edge(qcli, qruntime, processes, tmp_path):
    deploy_text(qcli, tmp_path, """
[jobs.flaky]
type = "bash"
inline = "echo attempt; exit 3"
retries = { limit = 1, backoff = "1s" }

[jobs.on-failure]
type = "bash"
inline = "echo cleaning up"
after = { job = "flaky", when = "failed" }
""")
    processes.start("worker", "--concurrency", "2")
    first = qcli("submit", "flaky").stdout.decode().strip()

    def settled():
        flaky, follow = job_records(qruntime, "flaky"), job_records(qruntime, "on-failure")
        done = len(flaky) == 2 and len(follow) == 1 and all(r["status"] not in ("queued", "pending", "running")
                                                            for r in flaky + follow)
        return (flaky, follow) if done else None

    flaky, follow = wait_for(settled, 120, "the retry and the failure edge", logs=processes.logs)
    time.sleep(2)  # nothing more comes: no third attempt, no second failure edge
    assert len(job_records(qruntime, "flaky")) == 2 and len(job_records(qruntime, "on-failure")) == 1
    assert [(r["status"], r["exit_code"], r["attempt"]) for r in flaky] == [("failed", 3, "1"), ("failed", 3, "2")]
    assert flaky[0]["id"] == first and flaky[1]["retry_of"] == first and flaky[1]["trigger"] == "retry"
    # Backoff: the retry did not start before its not_before time.
    assert flaky[1]["started_at"] >= flaky[1]["not_before"] - 0.01
    # The failure edge fired once, after the last attempt, with that attempt as parent.
    assert follow[0]["status"] == "succeeded"
    assert follow[0]["metadata"]["parent_execution"] == flaky[1]["id"]


def test_two_step_workflow_follows_the_condition(qcli, qruntime, processes):
    example = REPO / "config" / "deployments" / "two-step-workflow.toml"
    out = qcli("deploy", str(example))
    assert out.returncode == 0, out.stderr.decode()
    processes.start("worker", "--concurrency", "2")
    high = qcli("submit", "check", "--input", '{"disk_used_percent": 95}').stdout.decode().strip()
    low = qcli("submit", "check", "--input", '{"disk_used_percent": 20}').stdout.decode().strip()

    def settled():
        records = {j: job_records(qruntime, j) for j in ("check", "notify", "all-clear")}
        done = (len(records["check"]) == 2 and len(records["notify"]) == 1 and len(records["all-clear"]) == 1
                and all(r["status"] not in ("queued", "pending", "running") for rs in records.values() for r in rs))
        return records if done else None

    records = wait_for(settled, 120, "the workflow", logs=processes.logs)
    time.sleep(2)  # and nothing else runs
    assert len(job_records(qruntime, "notify")) == 1 and len(job_records(qruntime, "all-clear")) == 1
    store = qruntime.store
    assert store.records.get(high)["condition"] is True and store.records.get(low)["condition"] is False
    [notify], [all_clear] = records["notify"], records["all-clear"]
    assert notify["status"] == "succeeded" and all_clear["status"] == "succeeded"
    # B ran only after the check that set its condition true, with that check as parent.
    assert notify["metadata"]["parent_execution"] == high and notify["metadata"]["edge"] == "condition_true"
    assert all_clear["metadata"]["parent_execution"] == low
    assert notify["input"] == {"disk_used_percent": 95, "limit": 90}  # the parent's output
    log = qcli("logs", notify["id"]).stdout.decode()
    assert f"ALERT: disk 95% full (found by {high})" in log
    listing = qcli("jobs", "list").stdout.decode()
    assert notify["id"] in listing and "workflow" in listing
