"""The swarm executor (executor = "swarm") on a single-node swarm of this host's engine.

The `swarm` session fixture makes the engine a swarm manager only if it is in no swarm, and leaves
only a swarm it made (advertised on 127.0.0.1: no traffic leaves the host). After leaving, the Redis
containers' names stop resolving on their bridge networks for new containers (Docker 20.10): the
fixture disconnects and reconnects them (with their aliases), the minimum repair. Everything runs
under `flock /tmp/cronium-integration.lock` (the swarm is never active outside a test run).

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
from cronium.core.testing import ExecutorConformance

pytestmark = pytest.mark.integration

SWARM_KINDS = ("service", "secret", "network", "container")


def _aliases(info: dict, network: str) -> list[str]:
    endpoint = info["NetworkSettings"]["Networks"].get(network) or {}
    short = info["Id"][:12]
    return [a for a in endpoint.get("Aliases") or [] if a != short]


def _heal_names(engine, containers: list[str]) -> None:
    """Disconnect and reconnect each container on each of its user-defined networks, with the
    aliases it had: what repairs name resolution after `docker swarm leave` on Docker 20.10."""
    for name in containers:
        try:
            info = engine.api.inspect_container(name)
        except docker.errors.NotFound:
            continue
        for network in info["NetworkSettings"]["Networks"]:
            if network in ("bridge", "host", "none"):
                continue
            aliases = _aliases(info, network)
            engine.api.disconnect_container_from_network(name, network)
            engine.api.connect_container_to_network(name, network, aliases=aliases or None)


def _redis_container(engine, network: str) -> str:
    found = [c for c in engine.api.containers(filters={"network": network}) if "cronium.managed" not in c["Labels"]]
    assert found, f"no Redis container on {network}"
    return found[0]["Names"][0].lstrip("/")


@pytest.fixture(scope="session")
def swarm(engine, test_redis):
    """A single-node swarm on this engine (made here only if there was none, left only then)."""
    state = engine.info()["Swarm"].get("LocalNodeState")
    made = state == "inactive"
    if made:
        engine.api.init_swarm(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    elif state != "active":
        pytest.fail(f"the engine's swarm state is {state!r}: neither in a swarm nor out of one")
    redis = _redis_container(engine, test_redis["network"])
    yield {"redis_container": redis, "services_network": f"cronium-test-swarm-{uuid.uuid4().hex[:6]}"}
    if made:
        engine.api.leave_swarm(force=True)  # removes the overlays (also the services network) with it
        _heal_names(engine, [redis, "cronium-redis"])


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
