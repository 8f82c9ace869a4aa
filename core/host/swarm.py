"""What this host's Docker engine says about Docker Swarm (read-only): its role in a swarm and, on a
manager, its nodes. For `cronium doctor`; the swarm executor plugin does the work itself."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SwarmSummary:
    #: "inactive" (in no swarm), "manager", "worker", or the engine's own state when it is neither
    #: ("pending", "error", "locked").
    role: str
    node_id: str = ""
    #: On a manager: hostname -> "ready"/"down"/… (+ ", drain" when not active).
    nodes: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def ready_nodes(self) -> int:
        return sum(1 for state in self.nodes.values() if state == "ready")


def swarm_summary(client) -> SwarmSummary:
    """The engine's place in a swarm; lists the nodes only on a manager (a worker cannot)."""
    info = client.info().get("Swarm") or {}
    state = info.get("LocalNodeState") or "inactive"
    if state == "inactive":
        return SwarmSummary("inactive")
    if state != "active":
        return SwarmSummary(state, info.get("NodeID", ""), error=info.get("Error") or "")
    if not info.get("ControlAvailable"):
        return SwarmSummary("worker", info.get("NodeID", ""))
    nodes = {}
    for node in client.api.nodes():
        name = (node.get("Description") or {}).get("Hostname") or node.get("ID", "")[:12]
        status = (node.get("Status") or {}).get("State", "unknown")
        availability = (node.get("Spec") or {}).get("Availability", "active")
        nodes[name] = status + ("" if availability == "active" else f", {availability}")
    return SwarmSummary("manager", info.get("NodeID", ""), nodes)


def swarm_check(summary: SwarmSummary, *, needed: bool) -> tuple[bool, str, str]:
    """(ok, detail, fix) for `cronium doctor`: in no swarm is fine unless the swarm executor is
    configured (`needed`); a swarm executor needs a manager with at least one ready node."""
    fix_join = "make this engine a manager: `docker swarm init --advertise-addr <address>` (see docs/swarm-setup.md)"
    if summary.role == "inactive":
        return (not needed, "not in a swarm" + (" (the swarm executor is configured)" if needed else ""), fix_join)
    if summary.role == "worker":
        return (not needed, "a swarm worker: cronium's swarm executor must run on a manager",
                "run cronium on a manager node, or promote this one: `docker node promote <node>` on a manager")
    if summary.role != "manager":
        return (False, f"swarm state {summary.role}" + (f": {summary.error}" if summary.error else ""),
                "see `docker info`; `docker swarm leave --force` and join again")
    down = sorted(name for name, state in summary.nodes.items() if not state.startswith("ready"))
    detail = f"manager, {len(summary.nodes)} node(s), {summary.ready_nodes} ready"
    if down:
        detail += " (not ready: " + ", ".join(f"{n} {summary.nodes[n]}" for n in down) + ")"
    ok = summary.ready_nodes > 0 and not (needed and down)
    return (ok, detail, "see `docker node ls`; restart the engine of a node that is down, or `docker node rm` it")
