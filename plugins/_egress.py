"""Firewall rules for jobs that were allowed egress (not a plugin itself).

An egress job's network is an ordinary bridge with a route out. "Only egress" means it must still
not reach this host (its services on any address) nor private networks (Redis, other jobs, the LAN,
cloud metadata). Two sets of iptables rules, tagged with the execution id, do that:

- INPUT: drop everything arriving from the job's bridge (nothing on the host is for it);
- DOCKER-USER (forwarded traffic): let traffic stay inside the job's own bridge (job <-> sidecar),
  drop traffic from the bridge to private and link-local ranges; the rest — the internet — passes.

Each rule's tag also names the id of the network it guards (`cronium:<execution>:<network id>`),
so a rule is removed only with *its* network: neither the cleanup of a stale attempt nor a sweep
can remove the rules of a newer network of the same execution.

They need a local engine and root; when they cannot be applied the job refuses to start. They go
with the job (a registered resource, removed before its network) and, when a crash left them
behind, with the network plugin's `reap_orphans`, which judges each rule just before removing it.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess

PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
                  "127.0.0.0/8", "224.0.0.0/4")


def bridge_name(execution_id: str) -> str:
    """Linux interface names have at most 15 characters."""
    return "crx" + execution_id.removeprefix("exec_")[:12]


#: Length of the network id in a rule's tag.
NETWORK_ID_CHARS = 12


def tag(execution_id: str, network_id: str = "") -> str:
    return f"cronium:{execution_id}" + (f":{network_id[:NETWORK_ID_CHARS]}" if network_id else "")


def rules(execution_id: str, network_id: str = "") -> list[tuple[str, list[str]]]:
    """(chain, rule spec) pairs, in the order they are inserted at the top of their chain."""
    br = bridge_name(execution_id)
    tag_args = ["-m", "comment", "--comment", tag(execution_id, network_id)]
    out = [("INPUT", ["-i", br, *tag_args, "-j", "DROP"])]
    out += [("DOCKER-USER", ["-i", br, "-d", cidr, *tag_args, "-j", "DROP"]) for cidr in PRIVATE_RANGES]
    # Inserted last, so it ends up first: traffic within the job's own bridge is allowed.
    out.append(("DOCKER-USER", ["-i", br, "-o", br, *tag_args, "-j", "RETURN"]))
    return out


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True)


def available() -> str | None:
    """None when rules can be applied here, else why not."""
    if shutil.which("iptables") is None:
        return "iptables is not installed on this host"
    probe = _iptables("-S", "DOCKER-USER")
    if probe.returncode != 0:
        return f"cannot read the DOCKER-USER chain ({probe.stderr.strip() or 'not root?'})"
    return None


def apply(execution_id: str, network_id: str = "") -> None:
    for chain, spec in rules(execution_id, network_id):
        done = _iptables("-I", chain, "1", *spec)
        if done.returncode != 0:
            remove(execution_id, network_id)
            raise RuntimeError(done.stderr.strip() or f"iptables -I {chain} failed")


def remove(execution_id: str, network_id: str | None = None) -> None:
    """Delete every rule tagged with this execution — only those of one network when
    `network_id` is given (idempotent)."""
    for chain in ("INPUT", "DOCKER-USER"):
        for line in tagged(chain, execution_id):
            if network_id is None or network_of(line) == network_id[:NETWORK_ID_CHARS]:
                delete(line)


def delete(line: str) -> None:
    """Delete the rule of one `iptables -S` line; one already gone is fine."""
    done = _iptables("-D", *shlex.split(line)[1:])
    if done.returncode != 0 and "does a matching rule exist" not in done.stderr.lower() \
            and "bad rule" not in done.stderr.lower():
        raise RuntimeError(done.stderr.strip() or "iptables -D failed")


def tagged(chain: str, execution_id: str | None = None) -> list[str]:
    """`iptables -S` lines of a chain carrying a cronium tag (of one execution, or any)."""
    listing = _iptables("-S", chain)
    if listing.returncode != 0:
        return []
    if execution_id is None:
        return [line for line in listing.stdout.splitlines() if "cronium:exec_" in line]
    return [line for line in listing.stdout.splitlines()
            if (m := _TAG_RE.search(line)) and m.group(1) == execution_id]


def tagged_lines(execution_id: str) -> list[str]:
    """The rules of one execution in both chains, as `iptables -S` lines (listed now)."""
    return [line for chain in ("INPUT", "DOCKER-USER") for line in tagged(chain, execution_id)]


_TAG_RE = re.compile(r"cronium:(exec_[A-Za-z0-9]+)(?::([0-9a-f]+))?")


def network_of(line: str) -> str | None:
    """The network id (its first characters) a rule's tag names; None for a rule without one."""
    m = _TAG_RE.search(line)
    return m.group(2) if m else None


def tagged_executions() -> list[str]:
    """The executions that have rules in either chain, sorted."""
    found = {m.group(1) for chain in ("INPUT", "DOCKER-USER") for line in tagged(chain)
             for m in [_TAG_RE.search(line)] if m}
    return sorted(found)
