"""The warm sidecar pool of long-lived processes (docs/architecture.md, "Warm pools")."""
from __future__ import annotations

import pytest
from cronium.core import JobSpec, hookimpl
from queue_util import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def cronium_overrides():
    """These tests are about pooled sidecars: no pooled slots (tests/integration/test_slots.py)."""
    return {"pool.slots": False}


class _SidecarLabels:
    """Records the labels of each execution's sidecar while it runs."""

    def __init__(self, client):
        self.client = client
        self.labels: dict[str, dict] = {}
        self.ids: dict[str, str] = {}

    @hookimpl
    def sidecar_started(self, execution, sidecar):
        self.labels[execution.execution_id] = self.client.api.inspect_container(sidecar.container_id)["Config"]["Labels"]
        self.ids[execution.execution_id] = sidecar.container_id


def _pooled(engine, owner: str) -> list[dict]:
    return engine.api.containers(all=True, filters={"label": [f"cronium.owner={owner}", "cronium.pool"]})


@pytest.fixture
def warm_runtime(cronium_config):
    from cronium.core.runtime import Runtime

    rt = Runtime(cronium_config, warm_pool=True)
    yield rt
    rt.close()


def test_the_next_job_claims_a_pooled_sidecar_and_close_removes_the_idle_ones(warm_runtime, engine):
    from cronium.core.lifecycle import Orchestrator

    labels = _SidecarLabels(engine)
    warm_runtime.pm.register(labels, name="sidecar-labels")
    orchestrator = Orchestrator(warm_runtime)
    script = b"import cronium\ncronium.set_variable('n', (cronium.get_variable('n') or 0) + 1)\n" \
             b"cronium.output({'n': cronium.get_variable('n')})\n"
    spec = JobSpec(job_type="python", script=script, script_name="job.py")
    try:
        first = orchestrator.run(spec)
        assert first.status == "succeeded", first
        assert first.output == {"n": 1}
        assert "cronium.pool" not in labels.labels[first.execution_id]  # nothing was warm yet
        size = warm_runtime.config["sidecar.pool_size"]
        wait_for(lambda: len([c for c in _pooled(engine, warm_runtime.owner) if c["State"] == "running"]) >= size,
              60, f"{size} pooled sidecars to start")

        second = orchestrator.run(spec)
        assert second.status == "succeeded", second
        assert second.output == {"n": 2}  # the pooled sidecar serves the job's own variables
        assert "cronium.pool" in labels.labels[second.execution_id]  # a warm one served it
        # The claimed sidecar went away with its job, like a cold one.
        assert engine.api.containers(all=True, filters={"name": f"cronium-runtime-{second.execution_id}"}) == []
    finally:
        orchestrator.close()
    wait_for(lambda: len(_pooled(engine, warm_runtime.owner)) >= 1, 60, "the pool to top up again")
    warm_runtime.close()
    assert _pooled(engine, warm_runtime.owner) == []


def test_a_pooled_sidecar_whose_start_fails_is_removed(cronium_runtime, engine):
    """The container exists but the start (or the engine) failed: the pool removes it by name."""
    from cronium.plugins._sidecar_pool import SidecarPool

    made: list[str] = []

    def create(name: str) -> str:
        engine.api.create_container(cronium_runtime.config["images.sidecar"], name=name, labels={
            "cronium.managed": "true", "cronium.owner": cronium_runtime.owner, "cronium.pool": "test"})
        made.append(name)
        raise RuntimeError("the start failed")

    pool = SidecarPool.from_config(cronium_runtime)
    assert pool.take("test") is None  # a job asked: the pool tops up to sidecar.pool_size (2)
    pool.refill("test", create)
    wait_for(lambda: len(made) == 2 and not any(t.is_alive() for t in pool._threads), 60, "both attempts")
    assert pool.take("test") is None
    assert [engine.api.containers(all=True, filters={"name": name}) for name in made] == [[], []]
    pool.close()


def test_close_removes_pooled_sidecars_it_lost_track_of(cronium_runtime, engine):
    """A pooled container of this owner that the pool never learnt the id of is found by label."""
    from cronium.plugins._sidecar_pool import SidecarPool

    name = "cronium-pool-0123456789ab"
    engine.api.create_container(cronium_runtime.config["images.sidecar"], name=name, labels={
        "cronium.managed": "true", "cronium.owner": cronium_runtime.owner, "cronium.pool": "test"})
    SidecarPool.from_config(cronium_runtime).close()
    assert engine.api.containers(all=True, filters={"name": name}) == []


def test_pooled_sidecars_are_reaped_by_their_owner_installation_and_claim(cronium_runtime, engine):
    """Idle pooled sidecars carry a pool name as `cronium.execution`: judged by their owner and
    installation. A claimed one is judged as the execution its claim record names — by name alone
    (`cronium-runtime-<execution>`, no claim record) it is not bound to the execution."""
    import os
    import socket
    import subprocess

    from cronium.core.model import new_execution_id, pid_namespace
    from cronium.core.owners import installation_id
    from cronium.core.reaper import reap, remove_execution_resources
    from cronium.plugins import _docker

    proc = subprocess.Popen(["true"])
    proc.wait()
    host, pidns = socket.gethostname(), pid_namespace()
    dead, alive = f"{host}.{proc.pid}-{pidns}.dead00", f"{host}.{os.getpid()}-{pidns}.other0"
    ours = installation_id(cronium_runtime)
    store = cronium_runtime.store
    execution = new_execution_id()
    store.records.create(execution, {"id": execution, "status": "running", "owner": alive}, created_at=0)

    def pooled(name: str, owner: str, installation: str) -> str:
        return engine.api.create_container(cronium_runtime.config["images.sidecar"], name=name, labels={
            "cronium.managed": "true", "cronium.owner": owner, "cronium.role": "sidecar", "cronium.pool": "test",
            "cronium.execution": name if name.startswith("cronium-pool-") else "cronium-pool-0123456789ab",
            "cronium.installation": installation})["Id"]

    orphan = pooled("cronium-pool-00000000dead", dead, ours)
    foreign = pooled("cronium-pool-0000foreign0", dead, "another-installation")
    claimed = pooled(f"cronium-runtime-{execution}", alive, ours)
    unclaimed = pooled(f"cronium-runtime-{new_execution_id()}", alive, ours)  # named, never claimed
    store.pool_claims.claim(claimed, execution=execution, owner=alive)
    store.pool_claims.claim("0" * 64, execution=execution, owner=dead)  # its container is long gone
    try:
        report = reap(cronium_runtime)
        assert "container cronium-pool-00000000dead" in report.removed, report
        assert {"container cronium-pool-0000foreign0", f"container cronium-runtime-{execution}"} <= set(report.kept)
        assert set(store.pool_claims.all()) == {claimed}  # the stale claim was dropped
        assert remove_execution_resources(cronium_runtime, execution).removed == [f"container cronium-runtime-{execution}"]
        assert [engine.api.containers(all=True, filters={"id": c}) for c in (orphan, claimed)] == [[], []]
        assert len(engine.api.containers(all=True, filters={"id": unclaimed})) == 1
    finally:
        for container in (orphan, foreign, claimed, unclaimed):
            _docker.remove(engine, "container", container, wait=0)
        store.pool_claims.release(claimed, "0" * 64)
        store.records.update(execution, {"status": "succeeded"})


# --- a process holding a pool dies; a concurrent reaper; no reuse across executions ------------------

_HOLDER = """
import sys, time
from cronium.core import JobSpec
from cronium.core.lifecycle import Orchestrator
from cronium.core.runtime import Runtime

rt = Runtime(warm_pool=True)
orchestrator = Orchestrator(rt)
first = orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="a.py"))
print("owner", rt.owner, first.status, flush=True)
orchestrator.run(JobSpec(job_type="python", script=b"import time; time.sleep(600)", script_name="b.py", timeout=900))
"""


def _claims_of(store, owner: str) -> dict[str, dict]:
    return {cid: c for cid, c in store.pool_claims.all().items() if c["owner"] == owner}


def test_a_killed_process_holding_a_pool_and_a_claimed_slot_mid_job_is_reaped_by_gc(cli, cronium_runtime, engine,
                                                                                      redis_client):
    import json
    import os
    import signal
    import subprocess
    import sys

    from integration_util import acl_users

    store = cronium_runtime.store
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], env={**os.environ, "CRONIUM_CONFIG": str(cli.config),
                                                                    "CRONIUM_POOL_SLOTS": "false"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = holder.stdout.readline().decode().split()
        assert line[:1] == ["owner"] and line[2] == "succeeded", (line, holder.stderr.read1().decode())
        owner = line[1]
        mine = {"label": f"cronium.owner={owner}"}

        def mid_job():  # the second job runs on a claimed pooled sidecar, and the pool has topped up
            claims = _claims_of(store, owner)
            running = [c for c in claims.values() if store.records.values(c["execution"], ("status",)).get("status")
                       == "running"]
            idle = [c for c in engine.api.containers(filters={**mine, "name": "cronium-pool-"})]
            return running and idle and (claims, running[0]["execution"])

        claims, execution = wait_for(mid_job, 90, "the job to run on a claimed pooled sidecar")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert engine.api.containers(all=True, filters=mine) != []  # left behind until someone reaps
    proc = cli("gc", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert f"container cronium-runtime-{execution}" in report["removed"], report
    assert execution in report["lost"]
    assert engine.api.containers(all=True, filters=mine) == []
    assert engine.api.networks(filters={"label": f"cronium.execution={execution}"}) == []
    assert set(claims) & set(store.pool_claims.all()) == set()
    assert not [u for u in acl_users(redis_client) if execution in u]


def test_a_concurrent_reaper_keeps_a_live_claimed_slot(warm_runtime, engine, cronium_config):
    import threading

    from cronium.core.lifecycle import Cancellation, Orchestrator
    from cronium.core.reaper import reap
    from cronium.core.runtime import Runtime

    orchestrator = Orchestrator(warm_runtime)
    spec = JobSpec(job_type="python", script=b"import time; time.sleep(600)", script_name="job.py", timeout=900)
    cancel, results = Cancellation(), []
    try:
        assert orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="a.py")).status == "succeeded"
        # A started one (a pooled sidecar still being created is not idle yet: the job would boot one cold).
        wait_for(lambda: any(c["State"] == "running" for c in _pooled(engine, warm_runtime.owner)), 60,
                 "a started pooled sidecar")
        worker = threading.Thread(target=lambda: results.append(orchestrator.run(spec, cancel=cancel)))
        worker.start()
        store = warm_runtime.store
        claimed = wait_for(lambda: [(cid, c["execution"]) for cid, c in _claims_of(store, warm_runtime.owner).items()
                                    if store.records.values(c["execution"], ("status",)).get("status") == "running"],
                           60, "the job to run on a claimed pooled sidecar")
        (container, execution), = claimed
        other = Runtime(cronium_config)  # another process's sweep (`cronium gc`, a worker's reaper)
        try:
            report = reap(other)
        finally:
            other.close()
        assert f"container cronium-runtime-{execution}" in report.kept, report
        assert engine.api.inspect_container(container)["State"]["Running"]
        assert store.pool_claims.all()[container]["execution"] == execution
    finally:
        cancel.cancel("test over")
        if "worker" in locals():
            worker.join(60)
        orchestrator.close()
    assert results and results[0].status == "cancelled"
    assert container not in warm_runtime.store.pool_claims.all()  # released after the container went


def test_a_second_execution_cannot_use_the_first_ones_token_or_variables_through_the_pool(warm_runtime, engine):
    """Pooled sidecars hold nothing before a claim and serve one execution only: the next job gets
    another sidecar, which refuses the first job's token and cannot reach its namespace."""
    from cronium.core.lifecycle import Orchestrator

    labels = _SidecarLabels(engine)
    warm_runtime.pm.register(labels, name="sidecar-labels")
    orchestrator = Orchestrator(warm_runtime)
    first_script = (b"import os, cronium\ncronium.set_variable('secret', 'ns-a-only')\n"
                    b"cronium.output({'token': os.environ['CRONIUM_EXECUTION_TOKEN']})\n")
    second_script = b"""import json, os, urllib.request, urllib.error, cronium
first = cronium.input()['token']
def status(token):
    req = urllib.request.Request(os.environ['CRONIUM_RUNTIME_API'] + '/executions/' + os.environ['CRONIUM_EXECUTION_ID']
                                 + '/variables/secret', headers={'Authorization': 'Bearer ' + token})
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code
cronium.output({'first_token': status(first), 'own_token': status(os.environ['CRONIUM_EXECUTION_TOKEN']),
                'secret': cronium.get_variable('secret')})
"""
    try:
        warm = orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="w.py", namespace="ns-b"))
        assert warm.status == "succeeded", warm
        # Started, not only created: the pool lists a sidecar as idle once its start returned.
        wait_for(lambda: len([c for c in _pooled(engine, warm_runtime.owner) if c["State"] == "running"]) >= 2, 60,
                 "two pooled sidecars to start")
        first = orchestrator.run(JobSpec(job_type="python", script=first_script, script_name="a.py", namespace="ns-a"))
        assert first.status == "succeeded", first
        # The pool tops up in the background: wait for a started idle sidecar so the second job claims one too.
        wait_for(lambda: any(c["State"] == "running" for c in _pooled(engine, warm_runtime.owner)), 60,
                 "a pooled sidecar for the second job")
        second = orchestrator.run(JobSpec(job_type="python", script=second_script, script_name="b.py",
                                          namespace="ns-b", input={"token": first.output["token"]}))
        assert second.status == "succeeded", second
    finally:
        orchestrator.close()
    assert "cronium.pool" in labels.labels[first.execution_id] and "cronium.pool" in labels.labels[second.execution_id]
    assert labels.ids[first.execution_id] != labels.ids[second.execution_id]  # never one sidecar for two
    # The first token is refused by the second job's sidecar; its own works; ns-a stays out of reach.
    assert second.output["first_token"] in (401, 403), second.output
    assert (second.output["own_token"], second.output["secret"]) == (404, None), second.output


def test_an_idle_pool_drains_to_nothing_on_the_engine(cronium_config, engine):
    """No job asked for `pool.idle_timeout`: the pooled sidecars are removed from the engine while
    the process lives on (and it stops topping up)."""
    from cronium.core.lifecycle import Orchestrator
    from cronium.core.runtime import Runtime

    rt = Runtime(cronium_config.with_overrides({"pool.idle_timeout": 1.0}), warm_pool=True)
    orchestrator = Orchestrator(rt)
    try:
        first = orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="a.py"))
        assert first.status == "succeeded", first
        # Started, then drained: once the pool's idle sidecars are gone, nothing starts again.
        wait_for(lambda: rt.extension_if_present("sidecar-pool").counts["started"] >= 1, 60, "a pooled sidecar")
        wait_for(lambda: _pooled(engine, rt.owner) == [] and rt.extension_if_present("sidecar-pool").counts["drained"],
                 60, "the idle pool to drain")
        assert rt.extension_if_present("sidecar-pool").idle_count() == 0
    finally:
        orchestrator.close()
        rt.close()
