"""The swarm executor (executor = "swarm") on a single-node swarm of this host's engine.

The `swarm` module fixture makes the engine a swarm manager only if it is in no swarm, and leaves
only a swarm it made (advertised on 127.0.0.1: no traffic leaves the host), at the module's end, so
the next module (the two-node rig) finds the engine as it was. `HostSwarm.restore` repairs what a
leave breaks on Docker 20.10 (the test Redis' port and name, docs/swarm-setup.md) and the fixture
checks the test Redis serves the tests that follow. Everything runs under
`flock /tmp/cronium-integration.lock` (the swarm is never active outside a test run).

The executor conformance kit runs against the swarm executor; further tests attack what is
specific to it: the token in a service/secret spec, what the engine and kernel hold for a task,
placement, refusals, reaping.
"""
from __future__ import annotations

import ipaddress
import json
import uuid

import docker
import pytest
from cronium.core import hookimpl
from cronium.core.testing import ExecutorConformance

pytestmark = pytest.mark.integration

SWARM_KINDS = ("service", "secret", "network", "container")


def _redis_container(engine, network: str) -> str:
    found = [c for c in engine.api.containers(filters={"network": network}) if "cronium.managed" not in c["Labels"]]
    assert found, f"no Redis container on {network}"
    return found[0]["Names"][0].lstrip("/")


@pytest.fixture(scope="module")
def swarm(engine, test_redis):
    """A single-node swarm on this engine for this module (`HostSwarm`: made here only if the
    engine was in none, and then left at the module's end on every path, setup errors included,
    with what leaving breaks repaired: conftest's `_swarm_module` checks it)."""
    from cronium.core.testing.swarm_host import HostSwarm

    host = HostSwarm(engine)
    try:
        host.ensure()
        redis = _redis_container(engine, test_redis["network"])
        yield {"redis_container": redis, "services_network": f"cronium-test-swarm-{uuid.uuid4().hex[:6]}"}
    finally:
        host.restore()  # leaves only a swarm it made (its overlays, the services network, go with it)


@pytest.fixture
def swarm_overrides(swarm):
    return {"executor": "swarm", "swarm.redis_container": swarm["redis_container"],
            "swarm.services_network": swarm["services_network"], "swarm.task_timeout": 60.0}


def swarm_objects(client, execution_id: str) -> list[str]:
    """Services, secrets, networks and containers labelled for the execution, listed straight
    from the engine."""
    label = {"label": f"cronium.execution={execution_id}"}
    api = client.api
    found = [f"service {s['Spec']['Name']}" for s in api.services(filters=label)]
    found += [f"secret {s['Spec']['Name']}" for s in api.secrets(filters=label)]
    found += [f"network {n['Name']}" for n in api.networks(filters=label)]
    found += [f"container {c['Names'][0]}" for c in api.containers(all=True, filters=label)]
    found += [f"volume {v['Name']}" for v in api.volumes(filters=label).get("Volumes") or []]
    return sorted(found)


def swarm_inspect(client, execution_id: str) -> str:
    """Everything the engine shows about the execution: its services, secrets (the swarm never
    returns a secret's data), networks and task containers."""
    label = {"label": f"cronium.execution={execution_id}"}
    api = client.api
    seen = [api.inspect_service(s["ID"]) for s in api.services(filters=label)]
    seen += [api.inspect_secret(s["ID"]) for s in api.secrets(filters=label)]
    seen += [api.tasks(filters={"service": s["ID"]}) for s in api.services(filters=label)]
    seen += [api.inspect_network(n["Id"]) for n in api.networks(filters=label)]
    seen += [api.inspect_container(c["Id"]) for c in api.containers(all=True, filters=label)]
    return json.dumps(seen)


@pytest.mark.slow  # about 50 s: `make test-slow`; the module's own swarm tests stay in `make test`
class TestSwarmExecutor(ExecutorConformance):
    """The executor conformance kit against the swarm executor."""

    @pytest.fixture
    def cronium_overrides(self, swarm_overrides):
        return swarm_overrides

    @pytest.fixture
    def executor_leftovers(self, cronium_runtime):
        return lambda execution_id: swarm_objects(cronium_runtime.docker, execution_id)

    @pytest.fixture
    def executor_inspect(self, cronium_runtime):
        return lambda execution_id: swarm_inspect(cronium_runtime.docker, execution_id)

    @pytest.fixture
    def unreachable_targets(self, cronium_runtime, cronium_redis, swarm):
        """The kit's Docker targets, plus Redis' address on the swarm services network."""
        from cronium.core.testing.docker_targets import DockerTargets

        base = DockerTargets(cronium_runtime.docker, cronium_runtime.config, cronium_redis["network"])

        def targets(peer_sidecar):
            found = base(peer_sidecar)
            networks = cronium_runtime.docker.api.inspect_container(swarm["redis_container"])["NetworkSettings"]
            found["redis_on_swarm_services"] = (networks["Networks"][swarm["services_network"]]["IPAddress"], 6379)
            return found

        yield targets
        base.close()


# --- what is specific to the swarm executor ----------------------------------------------------------

HELD_JOB = """
import json, cronium
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines() if ':' in line)
mounts = [line.split()[1:4] for line in open('/proc/mounts') if line.split()[1] in ('/work', '/tmp')]
cronium.output({'no_new_privs': status['NoNewPrivs'].strip(), 'seccomp': status['Seccomp'].strip(),
                'cap_eff': status['CapEff'].strip(), 'mounts': sorted(mounts)})
while not cronium.get_variable(cronium.input()['done']):
    pass
"""


@pytest.fixture
def cronium_overrides(swarm_overrides):
    return swarm_overrides


@pytest.fixture
def swarm_run(cronium_run):
    return cronium_run


def test_the_engine_and_the_kernel_hold_the_profile_while_the_job_runs(swarm_run, cronium_runtime):
    """While the job runs: the services, tasks and network as the engine holds them, and what the
    kernel says from inside the job (no-new-privileges is set by setpriv: no service spec field)."""
    api, done = cronium_runtime.docker.api, f"swarm_done_{uuid.uuid4().hex[:8]}"
    seen: dict = {}

    class Look:
        @hookimpl
        def job_started(self, execution):
            label = {"label": f"cronium.execution={execution.execution_id}"}
            seen["services"] = {s["Spec"]["Name"]: s["Spec"] for s in api.services(filters=label)}
            seen["containers"] = [api.inspect_container(c["Id"]) for c in api.containers(all=True, filters=label)]
            seen["networks"] = [api.inspect_network(n["Id"]) for n in api.networks(filters=label)]
            cronium_runtime.store.variables.set("default", done, True)

    cronium_runtime.pm.register(Look(), name="look")
    result = swarm_run(HELD_JOB, input={"done": done})
    assert result.status == "succeeded", result
    assert result.output["no_new_privs"] == "1" and result.output["seccomp"] == "2"  # 2: a filter is on
    assert result.output["cap_eff"] == "0000000000000000"
    assert ["/work", "tmpfs", "rw,nosuid,nodev,relatime,size=65536k,mode=700,uid=10001,gid=10001"] in result.output["mounts"]
    job_name, sidecar_name = f"cronium-job-{result.execution_id}", f"cronium-runtime-{result.execution_id}"
    assert set(seen["services"]) == {job_name, sidecar_name}
    assert seen["services"][job_name]["Mode"] == {"Replicated": {"Replicas": 1}}
    assert seen["services"][job_name]["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
    assert all(s["EndpointSpec"]["Mode"] == "dnsrr" for s in seen["services"].values())
    assert len(seen["containers"]) == 2
    for container in seen["containers"]:
        hc = container["HostConfig"]
        assert (container["Config"]["User"], hc["ReadonlyRootfs"], hc["CapDrop"]) == ("10001:10001", True, ["ALL"])
        assert hc["Memory"] > 0 and hc["PidsLimit"] > 0 and hc["NanoCpus"] > 0
    (network,) = seen["networks"]
    assert (network["Driver"], network["Internal"], network["Attachable"], network["EnableIPv6"]) == \
        ("overlay", True, True, False)
    subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
    assert subnet.subnet_of(ipaddress.ip_network(cronium_runtime.config["network.pool"])) and subnet.prefixlen == 28
    job_container = next(c for c in seen["containers"] if c["Config"]["Labels"]["cronium.role"] == "swarm-job")
    assert list(job_container["NetworkSettings"]["Networks"]) == [network["Name"]]  # its own network only


def test_placement_no_node_matches_is_a_clear_error_and_leaves_nothing(swarm_run, cronium_runtime):
    cronium_runtime.config = cronium_runtime.config.with_overrides({"swarm.task_timeout": 3.0})
    result = swarm_run("print(1)\n", executor="swarm", placement=("node.labels.cronium-test==nowhere",))
    assert (result.status, result.error_phase) == ("error", "sidecar"), result
    assert "did not start the sidecar task within 3s" in result.error and "placement" in result.error
    assert swarm_objects(cronium_runtime.docker, result.execution_id) == []


def test_a_profile_a_service_cannot_hold_is_refused_and_leaves_nothing(swarm_run, cronium_runtime):
    result = swarm_run("print(1)\n", profile="strict")
    assert (result.status, result.error_phase) == ("error", "security"), result
    assert "service spec has no seccomp field" in result.error and 'seccomp = "default"' in result.error
    assert swarm_objects(cronium_runtime.docker, result.execution_id) == []


def test_cronium_run_executor_swarm_from_the_readme(swarm, cli, engine):
    """`cronium run --executor swarm examples/hello.py`, the installed executable end to end."""
    from pathlib import Path

    with open(cli.config, "a") as config:
        config.write(f'[swarm]\nredis_container = "{swarm["redis_container"]}"\n'
                     f'services_network = "{swarm["services_network"]}"\n')
    hello = Path(__file__).resolve().parents[2] / "examples" / "hello.py"
    done = cli("run", "--executor", "swarm", "--json", str(hello), "--input", '{"name": "swarm"}')
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and "swarm" in json.dumps(result["output"]), result
    assert swarm_objects(engine, result["execution_id"]) == []
    refused = cli("run", "--executor", "swarm", "--placement", "gpu=true", str(hello))
    assert refused.returncode == 2 and b"invalid placement constraint" in refused.stderr
