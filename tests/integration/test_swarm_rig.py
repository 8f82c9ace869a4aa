"""The two-node swarm rig works: the worker joins, gets its label, and a one-shot job service of a
cronium image pulled from the rig's registry completes on the worker.

Runs under /tmp/cronium-integration.lock (as every integration test): the rig makes this engine a
swarm manager for the session and leaves it as found."""
from __future__ import annotations

import time
import uuid

import pytest
from cronium.core.host.images import default_tags, registry_tag
from cronium.core.testing.swarm_rig import WORKER_HOSTNAME

pytestmark = pytest.mark.integration


def _wait_for_task(engine, service_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        tasks = engine.api.tasks(filters={"service": service_id})
        done = [t for t in tasks if t["Status"]["State"] in ("complete", "failed", "rejected", "shutdown")]
        if done:
            return done[0]
        if time.monotonic() > deadline:
            pytest.fail(f"the job service did not finish: {[t['Status'] for t in tasks]}")
        time.sleep(0.25)


def test_a_job_service_from_the_registry_completes_on_the_worker(engine, swarm_rig):
    from docker.types import RestartPolicy, ServiceMode

    nodes = {n["Description"]["Hostname"]: n for n in engine.api.nodes()}
    worker = nodes[WORKER_HOSTNAME]
    assert worker["Status"]["State"] == "ready" and worker["Spec"]["Labels"]["cronium.rig"] == "worker"
    assert worker["ID"] == swarm_rig.worker_node_id and len(nodes) >= 2

    local = default_tags()["python"]
    image = registry_tag(local, swarm_rig.registry.address)
    assert swarm_rig.push({"python": local}, ["python"]) == [image]
    assert "latest" in swarm_rig.registry.tags("cronium/python")
    with pytest.raises(Exception):
        swarm_rig.worker.images.get(image)  # not on the worker before the service runs

    marker = uuid.uuid4().hex
    service = engine.services.create(
        image, command=["python3", "-c", f"import socket; print('{marker}', socket.gethostname())"],
        name=f"cronium-rig-smoke-{marker[:8]}", mode=ServiceMode("replicated-job"),
        restart_policy=RestartPolicy(condition="none"), constraints=[f"node.hostname=={WORKER_HOSTNAME}"],
        labels={"cronium.test": "rig-smoke"})
    try:
        task = _wait_for_task(engine, service.id)
        assert task["Status"]["State"] == "complete", task["Status"]
        assert task["NodeID"] == swarm_rig.worker_node_id
        assert task["Status"]["ContainerStatus"]["ExitCode"] == 0
        pulled = swarm_rig.worker.images.get(image)  # the worker's own engine pulled it from the registry
        assert any(d.startswith(f"{swarm_rig.registry.address}/cronium/python@sha256:") for d in pulled.attrs["RepoDigests"])
        container = swarm_rig.worker.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
        assert marker in container.logs().decode()
    finally:
        service.remove()
