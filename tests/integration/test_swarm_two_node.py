"""The swarm executor on a real two-node swarm (the `swarm_rig` fixture: this engine as manager, a
second dockerd in a network namespace as worker, the rig's TLS registry): jobs placed on the
worker by constraint run there with their sidecar, their output arrives in order through the
manager, their sidecar reaches Redis on the manager over the services overlay, and they reach
nothing else; a killed orchestrator's objects are reaped on both nodes; a worker removed mid-job
ends the job with a clear status.

One rig for the module; everything runs under /tmp/cronium-integration.lock. Marked `slow` (about
140 s with the rig's start and teardown): `make test-slow` runs it, `make test` does not.
"""
from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from cronium.core import hookimpl
from cronium.core.testing.conformance import PEER_JOB, PROBE_JOB, assert_reached_only_its_sidecar
from cronium.core.testing.swarm_rig import WORKER_HOSTNAME
from test_swarm_executor import _redis_container, swarm_objects

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ON_WORKER = "node.labels.cronium.rig==worker"
ORDERED_JOB = """
import sys, cronium
key = cronium.input()['key']
cronium.set_variable(key, {'n': [1, 'two']})
for i in range(300):
    print(f'line {i}', flush=True)
    if i % 100 == 0:
        print(f'err {i}', file=sys.stderr, flush=True)
cronium.output({'read': cronium.get_variable(key)})
"""
SLEEP_JOB = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"


@pytest.fixture(scope="module")
def rig_settings(swarm_rig, engine, test_redis):
    """Config for swarm jobs on the rig: images from its registry (python and sidecar pushed
    once), the test Redis on a services overlay of this module."""
    from cronium.core.host.images import default_tags

    tags = {name: default_tags()[name] for name in ("python", "sidecar")}
    swarm_rig.push(tags, ["python", "sidecar"])
    return {"executor": "swarm", "images.registry": swarm_rig.registry.address,
            "swarm.redis_container": _redis_container(engine, test_redis["network"]),
            "swarm.services_network": f"cronium-test-swarm2-{uuid.uuid4().hex[:6]}",
            "swarm.task_timeout": 120.0}


@pytest.fixture
def cronium_overrides(rig_settings):
    return rig_settings


class Nodes:
    """Records, when the job starts, the node of each of the execution's tasks."""

    def __init__(self, api):
        self.api, self.seen, self.started = api, {}, threading.Event()

    @hookimpl
    def job_started(self, execution):
        for service in self.api.services(filters={"label": f"cronium.execution={execution.execution_id}"}):
            for task in self.api.tasks(filters={"service": service["ID"]}):
                self.seen[service["Spec"]["Labels"]["cronium.role"]] = task["NodeID"]
        self.started.set()


def test_a_job_on_the_worker_runs_in_order_and_uses_its_sidecar(cronium_run, cronium_runtime, swarm_rig):
    nodes = Nodes(cronium_runtime.docker.api)
    cronium_runtime.pm.register(nodes, name="nodes")
    records = []

    class Sink:
        name = "test"

        def write(self, batches):
            records.extend(r for b in batches for r in b.records())

        def close(self, ok):
            pass

    class Sinks:
        @hookimpl
        def log_sinks(self, execution):
            return Sink()

    cronium_runtime.pm.register(Sinks(), name="sinks")
    key = f"swarm2_{uuid.uuid4().hex[:8]}"
    result = cronium_run(ORDERED_JOB, input={"key": key}, placement=(ON_WORKER,))
    assert result.status == "succeeded", result.error
    assert nodes.seen == {"swarm-sidecar": swarm_rig.worker_node_id, "swarm-job": swarm_rig.worker_node_id}
    assert result.output == {"read": {"n": [1, "two"]}}  # set + get through the sidecar, Redis on the manager
    assert cronium_runtime.store.variables.get("default", key) == {"n": [1, "two"]}
    stdout = [r.text for r in records if r.stream == "stdout" and r.text.startswith("line ")]
    assert stdout == [f"line {i}\n" for i in range(300)]
    assert [r.text for r in records if r.stream == "stderr"] == [f"err {i}\n" for i in range(0, 300, 100)]
    assert [r.seq for r in records] == list(range(len(records)))
    assert swarm_objects(cronium_runtime.docker, result.execution_id) == []
    assert _worker_containers(swarm_rig, result.execution_id) == []


def test_a_job_on_the_worker_reaches_nothing_else(cronium_run, cronium_runtime, cronium_redis, swarm_rig,
                                                  rig_settings, engine):
    """As the conformance kit's probe: Redis (by name and by its services-overlay address), the
    host (the rig link's address, where the registry listens), another execution's sidecar."""
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    from cronium.core.testing.swarm_rig import HOST_ADDR, REGISTRY_PORT

    sidecars = {}

    class Sidecars:
        @hookimpl
        def sidecar_started(self, execution, sidecar):
            sidecars[execution.execution_id] = sidecar

    nodes = Nodes(cronium_runtime.docker.api)
    cronium_runtime.pm.register(nodes, name="nodes")
    cronium_runtime.pm.register(Sidecars(), name="sidecars")
    done = f"swarm2_done_{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(1) as pool:
        peer = pool.submit(cronium_run, PEER_JOB, input={"done": done}, placement=(ON_WORKER,), timeout=300)
        assert nodes.started.wait(180), "the peer job did not start"
        (peer_id, peer_sidecar), = sidecars.items()
        redis = engine.api.inspect_container(rig_settings["swarm.redis_container"])["NetworkSettings"]["Networks"]
        targets = {"redis_on_swarm_services": (redis[rig_settings["swarm.services_network"]]["IPAddress"], 6379),
                   "host_rig_link_registry": (HOST_ADDR, REGISTRY_PORT)}
        for task in engine.api.tasks(filters={"service": peer_sidecar.name}):
            for attachment in task.get("NetworksAttachments") or []:
                for address in attachment.get("Addresses") or []:
                    targets[f"peer sidecar {address}"] = (address.split("/")[0], 8081)
        assert len(targets) >= 4, targets  # the peer's sidecar on its job network and the services overlay
        names = [urlsplit(cronium_redis["sidecar_url"]).hostname, peer_sidecar.name]
        result = cronium_run(PROBE_JOB, input={"targets": targets, "names": names, "done": done},
                             placement=(ON_WORKER,))
        peer_result = peer.result()
    assert_reached_only_its_sidecar(result, peer_result, targets, names)


def _worker_containers(swarm_rig, execution_id: str, wait: float = 10.0) -> list[str]:
    """The worker engine's own containers of the execution, running or not, once it has removed
    them (or after `wait` seconds: a removed service's task is stopped and removed by its node)."""
    deadline = time.monotonic() + wait
    while True:
        label = {"label": f"cronium.execution={execution_id}"}
        api = swarm_rig.worker.api  # a worker's own engine: containers only (no swarm objects)
        found = [f"container {c['Names'][0]} ({c['State']})" for c in api.containers(all=True, filters=label)]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _running_execution(engine, role: str = "swarm-job", timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in engine.api.services(filters={"label": ["cronium.managed=true", f"cronium.role={role}"]}):
            if any(t["Status"]["State"] == "running" for t in engine.api.tasks(filters={"service": service["ID"]})):
                return service["Spec"]["Labels"]["cronium.execution"]
        time.sleep(0.25)
    pytest.fail("no swarm job started")


def test_killing_the_orchestrator_then_gc_leaves_nothing_on_either_node(popen_cli, cli, engine, swarm_rig,
                                                                        rig_settings, tmp_path):
    with open(cli.config, "a") as config:
        config.write(f'[images]\nregistry = "{rig_settings["images.registry"]}"\n'
                     f'[swarm]\nredis_container = "{rig_settings["swarm.redis_container"]}"\n'
                     f'services_network = "{rig_settings["swarm.services_network"]}"\ntask_timeout = 120.0\n'
                     f'placement = ["{ON_WORKER}"]\n')
    script = Path(tmp_path / "sleep.py")
    script.write_text(SLEEP_JOB)
    proc = popen_cli("run", "--no-agent", "--executor", "swarm", str(script))
    execution = _running_execution(engine)
    assert swarm_rig.worker.api.containers(filters={"label": f"cronium.execution={execution}"})  # on the worker
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert swarm_objects(engine, execution), "the killed orchestrator should have left its objects"
    gc = cli("gc")
    assert gc.returncode == 0, gc.stderr.decode()
    assert swarm_objects(engine, execution) == []
    assert _worker_containers(swarm_rig, execution) == []  # gc waited for the worker to stop the task


def test_a_timeout_on_the_worker_stops_the_job_there(cronium_run, engine, swarm_rig):
    """The job's task on the worker is stopped by the swarm when the job times out (its service
    is removed): nothing of it runs or stays on the worker's engine, nothing on the manager."""
    result = cronium_run(SLEEP_JOB, placement=(ON_WORKER,), timeout=6)
    assert result.status == "timed_out", result
    assert swarm_objects(engine, result.execution_id) == []
    assert _worker_containers(swarm_rig, result.execution_id) == []


def test_removing_the_worker_mid_job_gives_a_clear_status(cronium_run, cronium_runtime, engine, swarm_rig):
    """Last in the module: the worker node is forced out of the swarm while its job runs."""
    nodes = Nodes(cronium_runtime.docker.api)
    cronium_runtime.pm.register(nodes, name="nodes")

    def remove_worker():
        assert nodes.started.wait(180)
        engine.api.remove_node(swarm_rig.worker_node_id, force=True)

    remover = threading.Thread(target=remove_worker, daemon=True)
    remover.start()
    result = cronium_run(SLEEP_JOB, placement=(ON_WORKER,), timeout=300)
    remover.join()
    assert (result.status, result.error_phase) == ("error", "job"), result
    assert "exit status is unknown" in result.error, result.error
    named = (f"node {swarm_rig.worker_node_id[:12]} ", f"node {WORKER_HOSTNAME} ")  # by id (removed), name (down)
    assert any(n in result.error for n in named), result.error
    assert swarm_objects(engine, result.execution_id) == []

