"""This host's engine as a swarm manager, for tests: join a swarm only for the test, leave it as found.

- `HostSwarm.ensure()` inits a swarm when the engine is in none (advertising and listening on the
  address given, overlay subnets from `ADDR_POOL`, not Swarm's default 10.0.0.0/8) and remembers
  that it did (and which service containers were on which network); `restore()` leaves only a
  swarm it initialised (or, `adopt_stale()`, one a killed earlier holder did), removes the
  `docker_gwbridge` network the init created (`remove_unused_gwbridge`: when it did not exist
  before, once the leave released the swarm's endpoints on it, never while another container uses
  it) and reconnects cronium's service containers (`reconnect_service_containers`), because Docker 20.10 loses their names on
  bridge networks for new containers after a swarm init + leave.
- Everything here changes the shared engine: callers hold `/tmp/cronium-integration.lock` (the
  integration tests run under it).
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

#: Overlay networks of a swarm the tests create take /24s out of this range.
ADDR_POOL = "10.215.0.0/16"
GWBRIDGE = "docker_gwbridge"


def swarm_state(client) -> str:
    """The engine's `LocalNodeState`: inactive, active, pending, error, locked."""
    return (client.info().get("Swarm") or {}).get("LocalNodeState") or "inactive"


class HostSwarm:
    """Make this host's engine a swarm manager for a test, and undo exactly that."""

    def __init__(self, client, *, advertise_addr: str = "127.0.0.1"):
        self.client = client
        self.advertise_addr = advertise_addr
        self.inited = False
        self._had_gwbridge = True
        self._attached: list[tuple] = []

    def ensure(self) -> "HostSwarm":
        state = swarm_state(self.client)
        if state == "active":
            if not (self.client.info().get("Swarm") or {}).get("ControlAvailable"):
                raise RuntimeError("this engine is a swarm worker; the tests need a manager (or no swarm)")
            return self
        if state != "inactive":
            raise RuntimeError(f"this engine's swarm state is {state!r}; leave or fix it first")
        self._had_gwbridge = bool(_networks_named(self.client, GWBRIDGE))
        self._attached = _service_attachments(self.client, frozenset())  # the init itself was seen to detach one
        self.client.swarm.init(advertise_addr=self.advertise_addr, listen_addr=f"{self.advertise_addr}:2377",
                               default_addr_pool=[ADDR_POOL], subnet_size=24)
        self.inited = True
        return self

    def join_token(self, role: str = "worker") -> str:
        self.client.swarm.reload()
        return self.client.swarm.attrs["JoinTokens"]["Worker" if role == "worker" else "Manager"]

    @property
    def made_gwbridge(self) -> bool:
        """True while this holds a swarm whose init made `docker_gwbridge` (none existed before)."""
        return self.inited and not self._had_gwbridge

    def adopt_stale(self, *, made_gwbridge: bool) -> None:
        """Take over a swarm that a killed earlier holder initialised (the caller knows it by its
        address, and whether its init made `docker_gwbridge`): `restore()` then leaves it and
        removes that `docker_gwbridge` if it made it."""
        self.inited = True
        self._had_gwbridge = not made_gwbridge

    def restore(self, *, skip_networks: frozenset[str] = frozenset()) -> None:
        """Leave the swarm if `ensure()` initialised it (or `adopt_stale()` took it over); then
        remove the `docker_gwbridge` its init made and repair what leaving breaks (except on
        `skip_networks`)."""
        if not self.inited:
            return
        self.client.swarm.leave(force=True)
        self.inited = False
        if not self._had_gwbridge:
            remove_unused_gwbridge(self.client)
        reconnect_service_containers(self.client, skip_networks=skip_networks, known=self._attached)


def remove_unused_gwbridge(client, timeout: float = 15.0) -> bool:
    """After a swarm leave: remove `docker_gwbridge` once the engine has released what the swarm
    had on it (the ingress sandbox's endpoint goes a moment after the leave; waits up to
    `timeout`, then forces the swarm's stale `gateway_*` endpoints off, for up to `timeout` more).
    A container of anyone else still on it keeps it. True when it is gone."""
    _wait_swarm_networks_gone(client, timeout)
    deadline = time.monotonic() + timeout
    for net in _networks_named(client, GWBRIDGE):
        while True:  # the swarm's own endpoints are named gateway_<sandbox>
            net.reload()
            names = [e.get("Name") or key for key, e in (net.attrs.get("Containers") or {}).items()]
            if not names:
                break
            if [n for n in names if not n.startswith("gateway_")]:
                log.warning("%s kept: still used by %s", GWBRIDGE, ", ".join(names))
                return False
            if time.monotonic() > deadline + timeout:
                log.warning("%s kept: %s still on it after a forced disconnect", GWBRIDGE, ", ".join(names))
                return False
            if time.monotonic() > deadline:  # the swarm is left: its sandboxes' endpoints are stale
                _disconnect_stale_gateways(client, net, names)
            time.sleep(0.2)
        try:
            net.remove()
        except Exception as exc:  # noqa: BLE001 - reported: the caller's check names what is left
            log.warning("%s could not be removed: %s", GWBRIDGE, exc)
            return False
    return not _networks_named(client, GWBRIDGE)


def _disconnect_stale_gateways(client, net, names: list[str]) -> None:
    """Force the endpoints of a left swarm's sandboxes (`gateway_ingress-sbox` outlived a leave
    by more than 15 s here) off the network, as Docker's docs say to for removing docker_gwbridge."""
    for name in names:
        try:
            client.api.disconnect_container_from_network(name, net.id, force=True)
        except Exception as exc:  # noqa: BLE001 - the caller gives up at its hard deadline
            log.warning("%s: could not disconnect %s: %s", GWBRIDGE, name, exc)


def _networks_named(client, name: str) -> list:
    return [n for n in client.networks.list(names=[name]) if n.name == name]


def reconnect_service_containers(client, *, skip_networks: frozenset[str] = frozenset(), known: list = (),
                                 settle: float = 15.0) -> list[str]:
    """Disconnect and reconnect, with their aliases, the running service containers (not
    `cronium.managed` ones: no job or sidecar) on every network labelled `cronium.service`, so that
    new containers resolve their names again. Returns "container@network" for each one.

    This first waits until the swarm's networks are gone, and checks each container is attached
    again (reconnecting until it is, up to `settle` seconds); `RuntimeError` naming the ones that stayed off. `known`:
    attachments recorded before the swarm init (in a full run the init left the tests' Redis, made
    by docker-compose, on no network): those are reconnected too, with the aliases they had."""
    import docker.errors

    _wait_swarm_networks_gone(client, settle)
    plan = _service_attachments(client, skip_networks)
    seen = {(c.id, n.id) for c, n, _ in plan}
    plan += [(c, n, a) for c, n, a in known if (c.id, n.id) not in seen and n.name not in skip_networks]
    for container, net, aliases in plan:
        try:
            net.disconnect(container, force=True)
        except docker.errors.APIError:
            pass  # not attached any more (the init detached it): connected below
        _connect_until_attached(container, net, aliases, settle)
    time.sleep(0.5)  # a late clean-up of the leave would show now: check again, once, all of them
    missing = []
    for container, net, aliases in plan:
        try:
            _connect_until_attached(container, net, aliases, settle)
        except RuntimeError:
            missing.append(f"{container.name}@{net.name}")
    if missing:
        raise RuntimeError(f"after leaving the swarm, could not reconnect {', '.join(missing)}: "
                           "`docker network connect` them by hand (with their aliases)")
    healed = [f"{container.name}@{net.name}" for container, net, _ in plan]
    if healed:
        log.info("reconnected after leaving the swarm: %s", ", ".join(healed))
    return healed


def _service_attachments(client, skip_networks: frozenset[str]) -> list[tuple]:
    """(container, network, aliases) of each running service container on a `cronium.service` network."""
    plan = []
    for net in client.networks.list(filters={"label": "cronium.service"}):
        if net.name in skip_networks:
            continue
        net.reload()
        for container_id in net.attrs.get("Containers") or {}:
            container = client.containers.get(container_id)
            labels = (container.attrs.get("Config") or {}).get("Labels") or {}
            if labels.get("cronium.managed") == "true" or container.status != "running":
                continue
            entry = container.attrs["NetworkSettings"]["Networks"].get(net.name) or {}
            aliases = [a for a in entry.get("Aliases") or [] if not container.id.startswith(a)]
            plan.append((container, net, list(dict.fromkeys(aliases))))
    return plan


def _connect_until_attached(container, net, aliases: list[str], settle: float) -> None:
    import docker.errors

    deadline = time.monotonic() + settle
    while True:
        try:
            container.reload()
        except docker.errors.NotFound:
            return  # removed meanwhile: nothing to reconnect
        if container.status != "running":
            return
        if net.name in (container.attrs.get("NetworkSettings") or {}).get("Networks", {}):
            return
        try:
            net.connect(container, aliases=aliases or None)
        except docker.errors.NotFound:
            return  # the network (or the container) was removed meanwhile
        except docker.errors.APIError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{container.name} could not be reconnected to {net.name}: {exc}") from None
        if time.monotonic() > deadline:
            raise RuntimeError(f"{container.name} is still not on {net.name}")
        time.sleep(0.3)


def _wait_swarm_networks_gone(client, timeout: float) -> None:
    """Until the engine lists no swarm-scoped network (the ingress and the overlays) after a leave."""
    deadline = time.monotonic() + timeout
    while client.networks.list(filters={"scope": "swarm"}) and time.monotonic() < deadline:
        time.sleep(0.2)
