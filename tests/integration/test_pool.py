"""The warm sidecar pool of long-lived processes (docs/architecture.md, "Warm sidecar pool")."""
from __future__ import annotations

import pytest
from cronium.core import JobSpec, hookimpl
from queue_util import wait_for

pytestmark = pytest.mark.integration


class _SidecarLabels:
    """Records the labels of each execution's sidecar while it runs."""

    def __init__(self, client):
        self.client = client
        self.labels: dict[str, dict] = {}

    @hookimpl
    def sidecar_started(self, execution, sidecar):
        self.labels[execution.execution_id] = self.client.api.inspect_container(sidecar.container_id)["Config"]["Labels"]


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

    pool = SidecarPool(cronium_runtime, 2)
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
    SidecarPool(cronium_runtime, 2).close()
    assert engine.api.containers(all=True, filters={"name": name}) == []


def test_pooled_sidecars_are_reaped_by_their_owner_installation_and_name(cronium_runtime, engine):
    """Idle pooled sidecars carry a pool name as `cronium.execution`: judged by their owner and
    installation. A claimed one is known by its name, `cronium-runtime-<execution>`."""
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
    execution = new_execution_id()
    cronium_runtime.store.records.create(execution, {"id": execution, "status": "running", "owner": alive},
                                         created_at=0)

    def pooled(name: str, owner: str, installation: str) -> str:
        return engine.api.create_container(cronium_runtime.config["images.sidecar"], name=name, labels={
            "cronium.managed": "true", "cronium.owner": owner, "cronium.role": "sidecar", "cronium.pool": "test",
            "cronium.execution": name if name.startswith("cronium-pool-") else "cronium-pool-0123456789ab",
            "cronium.installation": installation})["Id"]

    orphan = pooled("cronium-pool-00000000dead", dead, ours)
    foreign = pooled("cronium-pool-0000foreign0", dead, "another-installation")
    claimed = pooled(f"cronium-runtime-{execution}", alive, ours)
    try:
        report = reap(cronium_runtime)
        assert "container cronium-pool-00000000dead" in report.removed, report
        assert {"container cronium-pool-0000foreign0", f"container cronium-runtime-{execution}"} <= set(report.kept)
        assert remove_execution_resources(cronium_runtime, execution).removed == [f"container cronium-runtime-{execution}"]
        assert [engine.api.containers(all=True, filters={"id": c}) for c in (orphan, claimed)] == [[], []]
    finally:
        for container in (orphan, foreign, claimed):
            _docker.remove(engine, "container", container, wait=0)
        cronium_runtime.store.records.update(execution, {"status": "succeeded"})
