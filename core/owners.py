"""Owners: which orchestrating process owns what, whether it is alive, and what may be reaped.

Every orchestrating process (a `cronium run`, a worker, the scheduler) has an owner id
`<host>.<pid>-<pid namespace inode>.<random>` and keeps a heartbeat key `P owner:<owner>` in Redis
while it lives (`Heartbeat`). Every resource of an execution carries the execution's labels (`cronium.execution`,
`cronium.owner`, `cronium.deadline`). A `Judgement` turns those into a `Verdict` — the decision the
reaper's plugins act on (see the `reap_orphans` hook):

- never a resource of this very process (our own live jobs);
- never another installation's: a resource of an execution (`exec_…`) belongs to this installation
  only if the execution has a record in this installation's store (the lifecycle writes it before
  anything is created); a resource labelled `cronium.installation` with another installation's id
  (`installation_id`) is not ours either;
- orphaned when its owner is gone — by pid (immediate) when it ran on this host *in this PID
  namespace*, otherwise (another host, a worker in a container, an id without a namespace) by
  heartbeat (expired after `heartbeat.ttl`) — or when its deadline has passed (whatever the owner's
  state). A deadline counts from the job's release: never while the record says `pending`
  (set-up, which may wait at unbounded gates), then the record's deadline, written at release.

`SweepJudgement` is that rule for a sweep (`cronium gc`, the background reaper); `ExecutionJudgement`
selects every resource of one execution whoever owned it (a worker re-running an execution whose
owner died).
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Protocol
from urllib.parse import urlsplit

from .errors import StoreUnavailable
from .model import pid_namespace

#: Seconds a heartbeat key lives; refreshed every HEARTBEAT_INTERVAL by a live owner.
HEARTBEAT_TTL = 15.0
HEARTBEAT_INTERVAL = 5.0


class OwnerParts(NamedTuple):
    """What an owner id says: host name, pid and PID namespace ("" when the id does not say)."""

    host: str
    pid: int | None
    pid_namespace: str


def parse_owner(owner: str) -> OwnerParts:
    """Owner ids look like `<host>.<pid>-<pid namespace>.<random>` (see model.new_owner_id); ids
    of earlier versions, `<host>.<pid>.<random>`, have no namespace."""
    parts = owner.rsplit(".", 2)
    if len(parts) != 3:
        return OwnerParts(owner, None, "")
    pid, _, namespace = parts[1].partition("-")
    try:
        return OwnerParts(parts[0], int(pid), "" if namespace == "0" else namespace)
    except ValueError:
        return OwnerParts(parts[0], None, "")


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (a killed process whose parent has not
    reaped it yet — e.g. a detached agent under an init that never reaps — is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def installation_id(runtime: Any) -> str:
    """A short id of this installation as seen from its Docker engine: its Redis key prefix, the
    Redis address its sidecars use (without credentials) and its services network."""
    cfg = runtime.config
    url = urlsplit(runtime.sidecar_redis_url)
    where = f"{url.hostname}:{url.port}{url.path}"
    text = "\0".join((cfg["redis.key_prefix"], where, cfg["services.network"] or ""))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class OwnerCheck:
    """Decides, with caching, whether an owner is alive. `redis_ok` turns false when a heartbeat
    could not be read (the owner then counts as alive: only its deadline can condemn it)."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.host = socket.gethostname()
        self.pid_namespace = pid_namespace()
        self._cache: dict[str, bool] = {}
        self.redis_ok = True

    def shares_process_table(self, owner: str) -> bool:
        """True when `owner`'s pid means a process of our own process table: same host name and
        same (known) PID namespace. Otherwise only its heartbeat can tell."""
        parts = parse_owner(owner)
        return (parts.host == self.host and parts.pid is not None and self.pid_namespace != "0"
                and parts.pid_namespace == self.pid_namespace)

    def alive(self, owner: str) -> bool:
        if owner == self.runtime.owner:
            return True
        if owner in self._cache:
            return self._cache[owner]
        if self.shares_process_table(owner):
            # Our process table is the truth — also for an owner that uses another Redis than
            # ours (its heartbeat is not in our Redis, but it is alive).
            alive = pid_alive(parse_owner(owner).pid)
        else:
            try:
                alive = self.runtime.store.owners.alive(owner)
            except StoreUnavailable:
                self.redis_ok = False
                alive = True  # cannot tell: keep it (the deadline still applies)
        self._cache[owner] = alive
        return alive


@dataclass(frozen=True)
class Verdict:
    """The core's decision about one resource. True when it is orphaned (remove it)."""

    orphaned: bool
    reason: str  # e.g. "its owner died", "its deadline passed", "its owner is alive"
    execution: str = ""
    owner: str = ""

    def __bool__(self) -> bool:
        return self.orphaned


class Judgement(Protocol):
    """What a `reap_orphans` implementation asks about each resource it finds."""

    def verdict(self, labels: Mapping[str, str]) -> Verdict:
        """For a resource that carries the execution's labels (`cronium.execution`,
        `cronium.owner`, `cronium.deadline`, maybe `cronium.installation`)."""

    def verdict_for(self, execution_id: str) -> Verdict:
        """For a resource that carries no labels but belongs to one execution (a Redis ACL user):
        judged by the execution's record (its owner and deadline)."""


def _deadline_passed(deadline: Any, now: float) -> bool:
    try:
        return float(deadline) < now
    except (TypeError, ValueError):
        return False


class SweepJudgement:
    """The rule of a sweep (module docstring). Remembers every execution it condemned
    (`condemned`: execution id -> verdict), so that the core can mark their records lost."""

    def __init__(self, runtime: Any, *, now: float | None = None):
        self.runtime = runtime
        self.now = time.time() if now is None else now
        self.owners = OwnerCheck(runtime)
        self.installation = runtime.installation
        self.condemned: dict[str, Verdict] = {}
        self._ours: dict[str, bool] = {}
        self._rows: dict[str, dict] = {}
        self._lock = threading.Lock()

    def verdict(self, labels: Mapping[str, str]) -> Verdict:
        installation = labels.get("cronium.installation")
        if installation and installation != self.installation:
            return Verdict(False, "another installation's", labels.get("cronium.execution", ""))
        return self._judge(labels.get("cronium.execution", ""), labels.get("cronium.owner", ""),
                           labels.get("cronium.deadline"))

    def verdict_for(self, execution_id: str) -> Verdict:
        try:
            record = self.runtime.store.records.values(execution_id, ("owner", "deadline"))
        except StoreUnavailable:
            self.owners.redis_ok = False
            return Verdict(False, "cannot tell: the store is unavailable", execution_id)
        if not record:
            return Verdict(False, "another installation's (no record here)", execution_id)
        return self._judge(execution_id, record.get("owner") or "", record.get("deadline"))

    def _judge(self, execution: str, owner: str, deadline: Any) -> Verdict:
        if owner and owner == self.runtime.owner:
            return Verdict(False, "owned by this process", execution, owner)
        if execution.startswith("exec_") and not self._is_ours(execution):
            return Verdict(False, "another installation's (no record here)", execution, owner)
        if not owner or not self.owners.alive(owner):
            verdict = Verdict(True, "its owner died", execution, owner)
        elif _deadline_passed(deadline, self.now) and self._deadline_applies(execution):
            verdict = Verdict(True, "its deadline passed", execution, owner)
        else:
            return Verdict(False, "its owner is alive", execution, owner)
        if execution.startswith("exec_"):
            with self._lock:
                self.condemned.setdefault(execution, verdict)
        return verdict

    def _deadline_applies(self, execution: str) -> bool:
        """Deadlines count from the job's release, which waits for unbounded set-up gates: while
        the record says `pending` (set-up), a live owner's execution is never past its deadline;
        once released, the record's deadline (written at release) is the one that counts."""
        if not execution.startswith("exec_"):
            return True
        with self._lock:
            row = self._rows.get(execution)
        if row is None:
            try:
                row = self.runtime.store.records.values(execution, ("status", "deadline"))
            except StoreUnavailable:
                self.owners.redis_ok = False
                return False  # cannot tell: keep it
            with self._lock:
                self._rows[execution] = row
        if row.get("status") == "pending":
            return False
        return "deadline" not in row or _deadline_passed(row["deadline"], self.now)

    def _is_ours(self, execution: str) -> bool:
        with self._lock:
            known = self._ours.get(execution)
        if known is None:
            try:
                known = self.runtime.store.records.exists(execution)
            except StoreUnavailable:
                self.owners.redis_ok = False
                return False  # cannot tell: keep it
            with self._lock:
                self._ours[execution] = known
        return known


class ExecutionJudgement:
    """Selects every resource of one execution, whoever owned it; nothing else."""

    def __init__(self, execution_id: str):
        self.execution_id = execution_id

    def verdict(self, labels: Mapping[str, str]) -> Verdict:
        return self.verdict_for(labels.get("cronium.execution", ""))

    def verdict_for(self, execution_id: str) -> Verdict:
        if execution_id == self.execution_id:
            return Verdict(True, "selected", execution_id)
        return Verdict(False, "not selected", execution_id)


class Heartbeat:
    """Keeps `P owner:<owner>` alive while this process may own resources (every
    `heartbeat.interval` seconds, living `heartbeat.ttl` seconds). `info` is added to each beat's
    value (a worker puts its load there); `last_beat` is the time of the last successful beat."""

    def __init__(self, runtime: Any, kind: str):
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
