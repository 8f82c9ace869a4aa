"""Built-in plugin `swarm_network`: one overlay network per execution, for the swarm executor.

The network `cronium-net-<execution>` is an attachable overlay (the sidecar and job services join
it), internal (no route out), IPv6 off, on a small subnet out of `network.pool` (not Swarm's
default /24s out of 10.0.0.0/8), encrypted when `swarm.encrypted` is true. Egress is refused:
its firewall rules guard a local bridge, which an overlay is not. Every task of the execution gets
the same `disable_ipv6` sysctls and short DNS timeouts as on the Docker executor. `reap_orphans`
removes orphaned overlay networks anywhere in the swarm.
"""
from __future__ import annotations

import random

from cronium.core import hookimpl
from cronium.core.errors import PhaseError, SecurityNotApplied
from cronium.core.model import ContainerOptions, NetworkInfo
from cronium.plugins import _swarm
from cronium.plugins.network import IPV6_OFF, MAX_ATTEMPTS, candidate_subnets, network_name
from docker.errors import APIError

#: This plugin belongs to the swarm executor: it takes part only in runs with executor = "swarm".
EXECUTOR = "swarm"
ROLE = "swarm-network"


@hookimpl(trylast=True)
def create_network(execution, runtime, resources):
    client, cfg = runtime.docker, runtime.config
    _swarm.manager_node(client, "network")
    if execution.egress:
        raise SecurityNotApplied("egress isolation on a swarm", "the swarm executor has no egress firewall: "
                                                                 "jobs on a swarm run without egress")
    name = network_name(execution.execution_id)
    labels = {**execution.labels, "cronium.role": ROLE}
    resources.add("network", name, lambda: _swarm.remove_owned(client, "network", name, labels))
    for subnet in candidate_subnets(cfg["network.pool"], cfg["network.subnet_prefix"], random.SystemRandom()):
        try:
            with runtime.gate("network-create", cfg["network.max_creating"]):
                created = _swarm.create_overlay(client, name, subnet=str(subnet), labels=labels, internal=True,
                                                encrypted=cfg["swarm.encrypted"])
        except APIError as exc:
            if "overlap" in str(exc).lower():
                continue
            raise PhaseError("network", f"the swarm refused to create {name}: {exc.explanation or exc}") from None
        check_engine_view(client, created["Id"])
        return NetworkInfo(name=name, id=created["Id"], subnet=str(subnet), internal=True)
    raise PhaseError("network", f"no free /{cfg['network.subnet_prefix']} subnet in {cfg['network.pool']} "
                                f"after {MAX_ATTEMPTS} attempts",
                     hint="run `cronium gc` to remove leftovers, or configure a larger network.pool")


def check_engine_view(client, network_id: str) -> None:
    """Refuse an overlay the engine holds other than asked: IPv6 on, not internal, not attachable."""
    held = client.api.inspect_network(network_id)
    for key, wanted in (("EnableIPv6", False), ("Internal", True), ("Attachable", True)):
        if bool(held.get(key)) != wanted:
            raise SecurityNotApplied(f"{key} = {wanted} on the job network", f"the engine reports {key}={held.get(key)}")


@hookimpl(trylast=True)
def container_options(execution, role):
    """IPv6 off in every task of the execution, and one-second DNS timeouts (nothing answers but
    the swarm's own resolver)."""
    return ContainerOptions(host_config={"Sysctls": dict(IPV6_OFF), "DnsOptions": ["timeout:1", "attempts:1"]},
                            applied=("IPv6 off",), source="swarm_network")


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Orphaned per-execution overlay networks."""
    client = runtime.docker

    def detach_and_remove(network: dict) -> None:
        _swarm.remove_services_of(client, network["Labels"])
        _swarm.remove(client, "network", network["Id"], wait=0)

    _swarm.reap(client, "network", ROLE, judge, dry_run, report, remove_one=detach_and_remove)
