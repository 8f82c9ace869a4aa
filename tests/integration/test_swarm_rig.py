"""The two-node swarm rig works: the worker joins, gets its label, a one-shot job service of a
cronium image pulled from the rig's registry completes on the worker, and it reaches a service on
the manager over an overlay network (VXLAN data crosses the rig's veth pair).

Runs under /tmp/cronium-integration.lock (as every integration test): the rig makes this engine a
swarm manager for the session and leaves it as found. Marked `slow` (about 45 s, most of it the
rig's start and teardown): `make test-slow` runs it, `make test` does not."""
from __future__ import annotations

import time
import uuid

import pytest
from cronium.core.host.images import default_tags, registry_tag
from cronium.core.testing.swarm_rig import WORKER_HOSTNAME

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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


@pytest.fixture(scope="module")
def rig_python(swarm_rig):
    """The python image's name in the rig's registry, pushed once per module."""
    local = default_tags()["python"]
    image = registry_tag(local, swarm_rig.registry.address)
    assert swarm_rig.push({"python": local}, ["python"]) == [image]
    return image


def _job(engine, image, name, code, **kwargs):
    from docker.types import RestartPolicy, ServiceMode

    return engine.services.create(
        image, command=["python3", "-c", code], name=name, mode=ServiceMode("replicated-job"),
        restart_policy=RestartPolicy(condition="none"), constraints=[f"node.hostname=={WORKER_HOSTNAME}"],
        labels={"cronium.test": "rig-smoke"}, **kwargs)


def test_a_job_service_from_the_registry_completes_on_the_worker(engine, swarm_rig, rig_python):
    nodes = {n["Description"]["Hostname"]: n for n in engine.api.nodes()}
    worker = nodes[WORKER_HOSTNAME]
    assert worker["Status"]["State"] == "ready" and worker["Spec"]["Labels"]["cronium.rig"] == "worker"
    assert worker["ID"] == swarm_rig.worker_node_id and len(nodes) >= 2

    image = rig_python
    assert "latest" in swarm_rig.registry.tags("cronium/python")
    with pytest.raises(Exception):
        swarm_rig.worker.images.get(image)  # not on the worker before the service runs

    marker = uuid.uuid4().hex
    service = _job(engine, image, f"cronium-rig-smoke-{marker[:8]}", f"print('{marker}')")
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


def test_a_job_on_the_worker_reaches_a_service_on_the_manager_over_an_overlay(engine, swarm_rig, rig_python):
    from docker.types import EndpointSpec, IPAMConfig, IPAMPool

    tag = uuid.uuid4().hex[:8]
    net = engine.networks.create(f"cronium-rig-ov-{tag}", driver="overlay", attachable=True, internal=True,
                                 ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="10.215.250.0/28")]),
                                 labels={"cronium.test": "rig-smoke"})
    server = job = None
    try:
        server = engine.services.create(
            default_tags()["python"], command=["python3", "-m", "http.server", "8000"], name=f"cronium-rig-api-{tag}",
            networks=[net.name], endpoint_spec=EndpointSpec(mode="dnsrr"), constraints=["node.role==manager"],
            labels={"cronium.test": "rig-smoke"})
        code = (f"import socket, time\nfor _ in range(40):\n try:\n  s = socket.create_connection(('cronium-rig-api-{tag}', 8000), 1)\n"
                "  s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(s.recv(12).decode()); break\n"
                " except OSError as e:\n  print('retry', e); time.sleep(0.25)\n")
        job = _job(engine, rig_python, f"cronium-rig-client-{tag}", code, networks=[net.name])
        task = _wait_for_task(engine, job.id)
        container = swarm_rig.worker.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
        assert task["NodeID"] == swarm_rig.worker_node_id
        assert "HTTP/1.0 200" in container.logs().decode(), container.logs().decode()[-500:]
    finally:
        for service in (job, server):
            if service is not None:
                service.remove()
        _remove_network_when_free(net)


def _remove_network_when_free(net, timeout: float = 30.0) -> None:
    import docker.errors

    deadline = time.monotonic() + timeout
    while True:
        try:
            net.remove()
            return
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
