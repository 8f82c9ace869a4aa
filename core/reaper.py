"""The reaper: removes what crashed orchestrators left behind, never a live job's resources.

Every container, network and volume of an execution carries labels `cronium.managed`,
`cronium.execution`, `cronium.owner` and `cronium.deadline`. Every orchestrating process (a
`cronium run`, a worker) keeps a heartbeat key `P owner:<owner>` in Redis while it lives. An
execution's resources are reaped when

- its owner is this very process: never (our own live jobs);
- its owner runs on this host and that process is gone (checked by pid: immediate);
- its owner's heartbeat has expired in Redis (any host; after `HEARTBEAT_TTL`);
- its deadline has passed (timeout + setup + grace: whatever the owner's state).

Records of executions whose owner died while they were pending or running become `lost`.
`cronium gc` runs this by hand (`--dry-run` only reports); `cronium run`, workers and the scheduler
run it in the background when they start.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import StoreUnavailable
from .model import LIVE_STATUSES

if TYPE_CHECKING:
    from .runtime import Runtime

#: Seconds a heartbeat key lives; refreshed every HEARTBEAT_INTERVAL by a live owner.
HEARTBEAT_TTL = 15.0
HEARTBEAT_INTERVAL = 5.0


@dataclass
class ReapReport:
    removed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"removed": self.removed, "lost": self.lost, "kept": self.kept, "errors": self.errors,
                "dry_run": self.dry_run}


def owner_host_and_pid(owner: str) -> tuple[str, int | None]:
    """Owner ids look like `<host>.<pid>.<random>` (see model.new_owner_id)."""
    parts = owner.rsplit(".", 2)
    if len(parts) != 3:
        return owner, None
    try:
        return parts[0], int(parts[1])
    except ValueError:
        return parts[0], None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OwnerCheck:
    """Decides, with caching, whether an owner is alive."""

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self.host = socket.gethostname()
        self._cache: dict[str, bool] = {}
        self.redis_ok = True

    def alive(self, owner: str) -> bool:
        if owner == self.runtime.owner:
            return True
        if owner in self._cache:
            return self._cache[owner]
        host, pid = owner_host_and_pid(owner)
        if host == self.host and pid is not None:
            # On this host the process table is the truth — also for an owner that uses another
            # Redis than ours (its heartbeat is not in our Redis, but it is alive).
            alive = pid_alive(pid)
        else:
            try:
                alive = self.runtime.store.owners.alive(owner)
            except StoreUnavailable:
                self.redis_ok = False
                alive = True  # cannot tell: keep it (the deadline still applies)
        self._cache[owner] = alive
        return alive


def reap(runtime: "Runtime", *, dry_run: bool = False, now: float | None = None) -> ReapReport:
    """One sweep over Docker (by label) and over the execution records in Redis."""
    now = time.time() if now is None else now
    report = ReapReport(dry_run=dry_run)
    check = OwnerCheck(runtime)
    client = runtime.docker
    label = {"label": "cronium.managed=true"}
    containers = client.api.containers(all=True, filters=label)
    networks = client.api.networks(filters=label)
    volumes = client.api.volumes(filters=label).get("Volumes") or []

    by_execution: dict[str, dict] = {}

    def note(labels: dict, kind: str, ident: str, name: str) -> None:
        execution = labels.get("cronium.execution", f"?{name}")
        entry = by_execution.setdefault(execution, {"owner": labels.get("cronium.owner", ""),
                                                    "deadline": labels.get("cronium.deadline"), "items": []})
        entry["items"].append((kind, ident, name))

    for c in containers:
        if c.get("State") == "removing":
            continue  # the engine is already removing it
        note(c.get("Labels") or {}, "container", c["Id"], (c.get("Names") or [c["Id"][:12]])[0].lstrip("/"))
    for n in networks:
        note(n.get("Labels") or {}, "network", n["Id"], n["Name"])
    for v in volumes:
        note(v.get("Labels") or {}, "volume", v["Name"], v["Name"])

    order = {"container": 0, "volume": 1, "network": 2}
    for execution, entry in sorted(by_execution.items()):
        owner, deadline = entry["owner"], entry["deadline"]
        expired = deadline is not None and deadline.isdigit() and float(deadline) < now
        owner_gone = not owner or not check.alive(owner)
        if owner == runtime.owner or not (expired or owner_gone):
            report.kept.extend(f"{kind} {name}" for kind, _, name in entry["items"])
            continue
        for kind, ident, name in sorted(entry["items"], key=lambda i: order[i[0]]):
            if dry_run:
                report.removed.append(f"{kind} {name}")
                continue
            try:
                _remove(client, kind, ident)
                report.removed.append(f"{kind} {name}")
            except Exception as exc:
                report.errors.append(f"{kind} {name}: {exc}")
        if not dry_run and execution.startswith("exec_"):
            _drop_acl_user(runtime, execution, report)
            _mark_lost(runtime, execution, "its owner died" if owner_gone else "its deadline passed", report,
                       owner=owner)
    _reap_firewall(by_execution, report, dry_run)
    if check.redis_ok:
        _sweep_records(runtime, check, now, report, dry_run)
    return report


def _reap_firewall(live: dict, report: ReapReport, dry_run: bool) -> None:
    """Egress firewall rules of executions that no longer have a network."""
    from cronium.plugins import _egress

    if _egress.available() is not None:
        return
    executions = set()
    for chain in ("INPUT", "DOCKER-USER"):
        for line in _egress.tagged(chain):
            executions.add(line.split("cronium:")[1].split()[0].strip('"'))
    for execution in sorted(executions):
        gone = [f"network cronium-net-{execution}"]
        if any(item in report.removed for item in gone) or execution not in live:
            if not dry_run:
                _egress.remove(execution)
            report.removed.append(f"firewall rules of {execution}")


def _remove(client, kind: str, ident: str) -> None:
    from docker.errors import NotFound

    try:
        if kind == "container":
            client.api.remove_container(ident, force=True, v=True)
        elif kind == "network":
            client.api.remove_network(ident)
        else:
            client.api.remove_volume(ident, force=True)
    except NotFound:
        pass


def _drop_acl_user(runtime: "Runtime", execution: str, report: ReapReport) -> None:
    try:
        store = runtime.store
        store.acl.delete(store.keys.acl_user(execution))
    except Exception as exc:  # an old Redis without ACL, or Redis down: nothing to drop
        if "unknown" not in str(exc).lower():
            report.errors.append(f"redis acl user of {execution}: {exc}")


def _mark_lost(runtime: "Runtime", execution: str, why: str, report: ReapReport, *, owner: str) -> None:
    """Atomically: only while the record is still live *and* still owned by the dead owner (a
    worker may have claimed the execution again in the meantime)."""
    try:
        if runtime.store.records.mark_lost(execution, owner=owner, error=f"lost: {why}", statuses=LIVE_STATUSES):
            report.lost.append(execution)
    except StoreUnavailable as exc:
        report.errors.append(f"record of {execution}: {exc}")


def remove_execution_resources(runtime: "Runtime", execution: str) -> list[str]:
    """Remove every Docker object and the Redis ACL user of one execution, whoever owned them.
    Used by a worker before it runs an execution again whose previous owner died."""
    client = runtime.docker
    label = {"label": f"cronium.execution={execution}"}
    items = [("container", c["Id"], c["Names"][0].lstrip("/")) for c in client.api.containers(all=True, filters=label)]
    items += [("volume", v["Name"], v["Name"]) for v in client.api.volumes(filters=label).get("Volumes") or []]
    items += [("network", n["Id"], n["Name"]) for n in client.api.networks(filters=label)]
    removed = []
    for kind, ident, name in items:
        _remove(client, kind, ident)
        removed.append(f"{kind} {name}")
    report = ReapReport()
    _drop_acl_user(runtime, execution, report)
    return removed


def _sweep_records(runtime: "Runtime", check: OwnerCheck, now: float, report: ReapReport, dry_run: bool) -> None:
    """Executions still pending/running in Redis whose owner is gone (even with nothing in Docker)."""
    ttl = runtime.config.get("heartbeat.ttl", HEARTBEAT_TTL)
    try:
        rows = runtime.store.records.live()
    except StoreUnavailable:
        return
    fresh = now - ttl
    for row in rows:
        if row["created_at"] is not None and row["created_at"] > fresh:
            continue  # too new to judge: its owner may not have beaten yet
        execution, owner_id = row["id"], row["owner"]
        if execution in report.lost:
            continue
        if check.alive(owner_id):
            continue
        if dry_run:
            report.lost.append(execution)
        else:
            _mark_lost(runtime, execution, "its owner died", report, owner=owner_id)


class Heartbeat:
    """Keeps `P owner:<owner>` alive while this process may own resources (every
    `heartbeat.interval` seconds, living `heartbeat.ttl` seconds). `info` is added to each beat's
    value (a worker puts its load there); `last_beat` is the time of the last successful beat."""

    def __init__(self, runtime: "Runtime", kind: str):
        self.runtime = runtime
        self.kind = kind
        self.ttl = runtime.config.get("heartbeat.ttl", HEARTBEAT_TTL)
        self.interval = runtime.config.get("heartbeat.interval", HEARTBEAT_INTERVAL)
        self.info: dict = {}
        self.started = time.time()
        self.last_beat = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.beat()  # synchronously once: before any resource of ours exists
        self._thread = threading.Thread(target=self._loop, name="cronium-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        self.runtime.store.owners.beat(self.runtime.owner, self.ttl,
                                     {"kind": self.kind, "pid": os.getpid(), "host": socket.gethostname(),
                                      "started": self.started, **self.info})
        self.last_beat = time.time()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:
                pass  # Redis briefly down: the next beat retries; the TTL covers short gaps

    def stop(self) -> None:
        self._stop.set()
        try:
            self.runtime.store.owners.drop(self.runtime.owner)
        except Exception:
            pass
