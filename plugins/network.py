"""Built-in plugin `network`: one private bridge network per execution.

The network is `internal` (no route out) unless the job was allowed egress — then firewall rules
keep it off this host and private networks (see `_egress`) — and it takes a small
subnet (a /28 by default) out of `network.pool`, so thousands of jobs can run at once instead of
the ~30 networks Docker's default address pools allow. The bridge gets no IPv4 address on the
host (`inhibit_ipv4`), so a job cannot reach the Docker host through its own network either.
IPv6 is off: the network is created with `EnableIPv6: false` (and refused if the engine still
reports IPv6 on for it), and every container of the execution gets the `disable_ipv6` sysctls, so
not even link-local (fe80::, ff02::1) traffic reaches the host's bridge or a neighbour.
`reap_orphans` removes orphaned networks, then the firewall rules of executions whose network is gone.
"""
from __future__ import annotations

import ipaddress
import random

from cronium.core import hookimpl
from cronium.core.errors import PhaseError, SecurityNotApplied
from cronium.core.model import ContainerOptions, NetworkInfo
from cronium.plugins import _docker, _egress
from docker.errors import APIError
from docker.types import IPAMConfig, IPAMPool

#: This plugin belongs to the Docker executor: it takes part only in runs with executor = "docker".
EXECUTOR = "docker"
#: Attempts at finding a free subnet before giving up.
MAX_ATTEMPTS = 64
#: Sysctls of every container of an execution: no IPv6 on any interface, also on one attached
#: later (`default` applies to interfaces created after the container started).
IPV6_OFF = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


def network_name(execution_id: str) -> str:
    return f"cronium-net-{execution_id}"


def candidate_subnets(pool: str, prefix: int, rng: random.Random) -> list[ipaddress.IPv4Network]:
    """`MAX_ATTEMPTS` random distinct subnets of the pool (the engine tells us which are taken)."""
    net = ipaddress.ip_network(pool)
    count = 2 ** (prefix - net.prefixlen)
    picks = rng.sample(range(count), min(MAX_ATTEMPTS, count))
    size = 2 ** (32 - prefix)
    base = int(net.network_address)
    return [ipaddress.ip_network(f"{ipaddress.ip_address(base + i * size)}/{prefix}") for i in picks]


def _overlap(exc: APIError) -> bool:
    text = str(exc).lower()
    return "overlap" in text or "pool" in text and "available" in text


@hookimpl(trylast=True)
def create_network(execution, runtime, resources):
    client = runtime.docker
    cfg = runtime.config
    internal = not execution.egress
    name = network_name(execution.execution_id)
    labels = {**execution.labels, "cronium.role": "network"}
    options = {"com.docker.network.bridge.enable_icc": "true"}
    if internal:
        options["com.docker.network.bridge.inhibit_ipv4"] = "true"
    else:
        reason = _egress.available()
        if reason:
            raise SecurityNotApplied("egress isolation (only egress, no host or private networks)", reason)
        options["com.docker.network.bridge.name"] = _egress.bridge_name(execution.execution_id)
    # Registered before the create call: a create that times out on our side may still complete
    # in the engine, and must be removed all the same (by name — while it is this attempt's —
    # until the engine answered, then by the id it gave).
    owned = _docker.Owned(client, "network", name, labels)
    resources.add("network", name, owned.remove)
    try:
        made = create_in_pool(runtime, name, internal=internal, labels=labels, options=options)
    except APIError as exc:
        raise PhaseError("network", f"the engine refused to create {name}: {exc.explanation or exc}") from None
    if made is None:
        raise PhaseError("network", f"no free /{cfg['network.subnet_prefix']} subnet in {cfg['network.pool']} "
                                    f"after {MAX_ATTEMPTS} attempts",
                         hint="run `cronium gc` to remove leftovers, or configure a larger network.pool")
    network_id, subnet = owned.created(made[0]), made[1]
    check_engine_view(client, network_id, internal=internal)
    if not internal:
        # The rules are tagged with the execution: a newer attempt's network means they are its.
        resources.add("firewall", name, lambda: None if _docker.taken_by_another(client, "network", name, labels)
                      else _egress.remove(execution.execution_id, network_id))
        try:
            _egress.apply(execution.execution_id, network_id)
        except RuntimeError as exc:
            raise SecurityNotApplied("egress isolation firewall rules", str(exc)) from None
    return NetworkInfo(name=name, id=network_id, subnet=subnet, internal=internal)


def create_in_pool(runtime, name: str, *, internal: bool, labels: dict, options: dict) -> tuple[str, str] | None:
    """Create the network `name` on a free subnet of `network.pool`, trying random candidates (an
    overlap with an existing network tries the next one). Returns (the engine's id, the subnet),
    or None when no candidate was free; any other refusal of the engine raises its APIError."""
    cfg = runtime.config
    for subnet in candidate_subnets(cfg["network.pool"], cfg["network.subnet_prefix"], random.SystemRandom()):
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))])
        try:
            # The engine serialises network creation; queueing here beats timing out there.
            with runtime.gate("network-create", cfg["network.max_creating"]):
                created = _docker.create_network(runtime.docker, name, internal=internal, ipam=ipam,
                                                 labels=labels, options=options)
        except APIError as exc:
            if _overlap(exc):
                continue
            raise
        return created["Id"], str(subnet)
    return None


def check_engine_view(client, network_id: str, *, internal: bool) -> None:
    """Refuse a network the engine holds other than asked: IPv6 on, or not internal."""
    held = client.api.inspect_network(network_id)
    if held.get("EnableIPv6"):
        raise SecurityNotApplied("IPv6 off on the job network",
                                 "the engine reports IPv6 enabled for it (check the daemon's "
                                 "default-network-opts / ipv6 settings)")
    if bool(held.get("Internal")) != internal:
        raise SecurityNotApplied("an internal job network" if internal else "an egress job network",
                                 f"the engine reports Internal={held.get('Internal')}")


@hookimpl(trylast=True)
def container_options(execution, role):
    """IPv6 off in every container of the execution (see `IPV6_OFF`). On a network with no way out,
    a lookup of any name but a container's can only time out: make that take one second, not the
    resolver's default of several retries of five."""
    host_config: dict = {"Sysctls": dict(IPV6_OFF)}
    if not execution.egress:
        host_config["DnsOptions"] = ["timeout:1", "attempts:1"]
    return ContainerOptions(host_config=host_config, applied=("IPv6 off",), source="network")


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Orphaned networks, then egress firewall rules."""
    client = runtime.docker
    found = _docker.labelled(client, "network", "cronium.managed=true", "cronium.role=network")
    _docker.reap(client, "network", found, judge, dry_run, report,
                 remove_one=lambda network: _detach_and_remove(client, network["Id"]))
    if _egress.available() is None:
        gone_in_dry_run = {n["Name"] for n in found if dry_run and f"network {n['Name']}" in report.removed}
        for execution in _egress.tagged_executions():
            _reap_rules(client, execution, judge, dry_run, report, gone_in_dry_run)


def _detach_and_remove(client, network_id: str) -> None:
    """An orphaned network may still have its execution's containers attached (the plugins that
    reap them may come later in the sweep): detach them, then remove the network."""
    _docker.detach_all(client.api, network_id)
    _docker.remove(client, "network", network_id, wait=0)


def _reap_rules(client, execution: str, judge, dry_run: bool, report, gone_in_dry_run: set[str]) -> None:
    """Rules are created after their network and removed before it: while the network a rule
    guards exists, the rule stays (also when the network's removal failed); once it is gone, the
    rule is judged by its execution's record. Each rule is decided on its own, its network looked
    up just before the rule is removed — by the id in its tag — so the rules of a network created
    during the sweep (a new attempt of the same execution, too) stay."""
    what = f"firewall rules of {execution}"
    name = network_name(execution)
    removed = kept = 0
    for line in _egress.tagged_lines(execution):
        if _guards(client, name, line, gone_in_dry_run) or not judge.verdict_for(execution) \
                or _guards(client, name, line, gone_in_dry_run):  # asked again: the verdict took time
            kept += 1
            continue
        if not dry_run:
            try:
                _egress.delete(line)
            except Exception as exc:
                report.errors.append(f"{what}: {exc}")
                continue
        removed += 1
    if removed:
        report.removed.append(what)
    if kept and not removed:
        report.kept.append(what)


def _guards(client, name: str, line: str, gone_in_dry_run: set[str]) -> bool:
    """Does the network this rule guards exist now? By the id in the rule's tag, else by name."""
    from docker.errors import NotFound

    if name in gone_in_dry_run:
        return False
    network_id = _egress.network_of(line)
    if network_id is None:
        return any(n["Name"] == name for n in _docker.labelled(client, "network", "cronium.managed=true", name=name))
    try:
        client.api.inspect_network(network_id)
    except NotFound:
        return False
    return True
