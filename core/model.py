"""Typed, frozen payloads: what a job is, and what the hooks receive.

Nothing here holds a secret in clear: the execution token and secret env values travel inside
`Secret`, whose repr and str are masked, so printing or logging a payload never shows them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Mapping

JOB_TYPES = ("python", "bash", "node", "container")
#: Script file extension -> job type (`cronium run hello.py`, `script = "x.sh"` in a deployment).
EXTENSION_TYPES = {".py": "python", ".sh": "bash", ".bash": "bash", ".js": "node", ".mjs": "node", ".cjs": "node"}
#: Job type -> the extension of a script that has no file name of its own.
SCRIPT_EXTENSIONS = {"python": ".py", "bash": ".sh", "node": ".js"}
INTERPRETERS = {"python": "python3", "bash": "bash", "node": "node"}
#: Variable namespaces (and the default `namespace` in config).
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Environment variable names a job may set.
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")



class Status(StrEnum):
    """Every status an execution record can have. A `StrEnum`: members compare equal to their text,
    which is what Redis stores."""

    QUEUED = "queued"  # in the queue, no process has taken it yet
    PENDING = "pending"  # an orchestrator is setting it up
    RUNNING = "running"  # the job's code runs
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OOM_KILLED = "oom_killed"
    CANCELLED = "cancelled"
    ERROR = "error"  # setup failed, or the queue gave up on it
    LOST = "lost"  # its owner died while it was live (a worker may run it again)


#: An orchestrating process owns the execution right now (the reaper's record sweep looks at these).
LIVE_STATUSES = (Status.PENDING, Status.RUNNING)
#: Final statuses, exactly one per finished execution.
FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.OOM_KILLED, Status.CANCELLED,
                  Status.ERROR)
#: Nothing more happens to the execution unless a worker re-runs a lost one (`cronium logs -f` stops).
ENDED_STATUSES = (*FINAL_STATUSES, Status.LOST)
#: The execution still holds its job's concurrency slot.
ACTIVE_STATUSES = (Status.QUEUED, *LIVE_STATUSES, Status.LOST)
#: Statuses a deployment's retry policy may retry.
RETRYABLE_STATUSES = (Status.FAILED, Status.TIMED_OUT, Status.OOM_KILLED, Status.ERROR)

#: Exit codes of `cronium run` for outcomes that have no exit code of their own.
EXIT_CODES = {Status.TIMED_OUT: 124, Status.ERROR: 125, Status.OOM_KILLED: 137, Status.CANCELLED: 130,
              Status.LOST: 1}


class Secret:
    """A string that never shows itself by accident. Call `reveal()` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __reduce__(self):  # never pickled into a record by mistake
        raise TypeError("Secret values cannot be pickled")


class DeferredSecret(Secret):
    """A `Secret` whose value is made on its first `reveal()`: the execution token, signed when the
    executor hands it to the job (the Docker executor: at release), so its lifetime counts from
    there."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], str]):
        super().__init__("")
        self._make: Callable[[], str] | None = make

    def reveal(self) -> str:
        if self._make is not None:
            self._value, self._make = self._make(), None
        return self._value


#: What `new_execution_id` makes (and all a path or a key may be built from).
EXECUTION_ID_RE = re.compile(r"^exec_[0-9a-f]{16}$")


def new_execution_id() -> str:
    return "exec_" + os.urandom(8).hex()


def pid_namespace() -> str:
    """The inode of this process's PID namespace ("0" where it cannot be read): two processes with
    the same host name and pid are the same process only if this is the same too (a worker in a
    container may have both its host's name and a pid that is taken on the host)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def new_owner_id() -> str:
    """Identifies one orchestrating process (a `cronium run` or a worker):
    `<host>.<pid>-<pid namespace>.<random>` (parsed by `cronium.core.owners.parse_owner`)."""
    return f"{socket.gethostname()}.{os.getpid()}-{pid_namespace()}.{os.urandom(3).hex()}"


@dataclass(frozen=True)
class Resources:
    """Requested limits; None means 'the profile's default'."""

    memory: int | None = None  # bytes
    cpus: float | None = None
    pids: int | None = None


@dataclass(frozen=True)
class JobSpec:
    """What to run. Built by the CLI, a deployment or the Python API; validated by the core."""

    job_type: str  # python | bash | node | container
    script: bytes | None = None
    script_name: str | None = None  # file name inside the container, e.g. hello.py
    image: str | None = None  # None: the image for job_type from config
    command: tuple[str, ...] = ()
    input: Any = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, Secret] = field(default_factory=dict)
    timeout: float | None = None  # seconds; None: config `timeout`
    resources: Resources = Resources()
    profile: str | None = None
    namespace: str | None = None
    job_id: str | None = None
    job_name: str | None = None
    egress: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    execution_id: str | None = None  # set by a queue for idempotent re-delivery
    attempt: int = 1
    #: Free-form settings for plugins, by plugin name (from a deployment's `[jobs.X.plugins.NAME]`).
    plugin_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The executor that runs the job ("docker", "swarm", ...); None: config `executor`.
    executor: str | None = None
    #: Placement constraints for a cluster executor, e.g. ("node.labels.gpu==true",).
    placement: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """The spec as stored in the execution record: no script body, no secret values."""
        return {
            "job_type": self.job_type,
            "script_name": self.script_name,
            "script_bytes": len(self.script) if self.script is not None else None,
            "image": self.image,
            "command": list(self.command),
            "env": sorted(self.env),
            "secret_env": sorted(self.secret_env),
            "timeout": self.timeout,
            "resources": {"memory": self.resources.memory, "cpus": self.resources.cpus, "pids": self.resources.pids},
            "profile": self.profile,
            "namespace": self.namespace,
            "egress": self.egress,
            "attempt": self.attempt,
            "plugin_settings": dict(self.plugin_settings),
            "executor": self.executor,
            "placement": list(self.placement),
        }


@dataclass(frozen=True)
class ExecutionInfo:
    """One execution, as every hook sees it. Never contains the token or secret env values."""

    execution_id: str
    job_id: str
    job_name: str
    job_type: str
    namespace: str
    owner: str
    image: str
    profile: str
    timeout: float
    created_at: float
    deadline: float  # unix time after which every resource of this execution may be reaped
    labels: Mapping[str, str]
    resources: Resources
    egress: bool = False
    attempt: int = 1
    #: Free-form settings for plugins, by plugin name (see JobSpec.plugin_settings).
    plugin_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The executor that runs it: only the plugins of this executor (and those of none) take part.
    executor: str = "docker"
    #: Placement constraints for a cluster executor (see JobSpec.placement).
    placement: tuple[str, ...] = ()

    @property
    def attempt_tag(self) -> str:
        """Tells this attempt of the execution from every other one — also from a re-run with the
        same attempt number by another owner: 8 hex characters of (attempt, owner). Names and
        credentials that must differ per attempt (the sidecar's Redis ACL user) carry it."""
        return hashlib.sha256(f"{self.attempt}.{self.owner}".encode()).hexdigest()[:8]


@dataclass(frozen=True)
class TokenClaims:
    """The claims of the execution token (the token itself never reaches a hook)."""

    execution_id: str
    job_id: str
    namespace: str
    audience: str
    issuer: str
    subject: str
    jti: str
    issued_at: int
    not_before: int
    expires_at: int
    algorithm: str

    def as_jwt_claims(self) -> dict[str, Any]:
        return {
            "sub": self.subject, "aud": self.audience, "iss": self.issuer, "jti": self.jti,
            "iat": self.issued_at, "nbf": self.not_before, "exp": self.expires_at,
            "executionId": self.execution_id, "jobId": self.job_id, "namespace": self.namespace,
        }


@dataclass(frozen=True)
class IssuedToken:
    """Returned by the `issue_token` provider: the token (as a Secret), the key the sidecar verifies
    with, the claims, and optionally how to sign it again (`renew`)."""

    token: Secret
    verify_key: Secret  # PEM public key (EdDSA) or the shared secret (HS256)
    claims: TokenClaims
    #: Signs the same token again (same key, same jti), valid from the moment it is called; None
    #: when the provider cannot. The core calls it when the job is released and then drops it.
    renew: Callable[[], "IssuedToken"] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    id: str
    subnet: str
    internal: bool


@dataclass(frozen=True)
class SidecarInfo:
    container_id: str
    name: str
    image: str
    alias: str
    url: str  # as seen from the job: http://runtime-api:8081
    probe_url: str | None  # as seen from the orchestrator, when reachable
    ready_seconds: float  # container start -> ready


@dataclass(frozen=True)
class Slot:
    """What a `claim_slot` provider returns: a pooled slot bound to the execution — its network, its
    ready sidecar and its job (a `JobHandle` of a started container that waits for `release()`)."""

    network: NetworkInfo
    sidecar: SidecarInfo
    handle: Any


@dataclass(frozen=True)
class ContainerOptions:
    """A contribution to the options of a container (merged by the core, in plugin order).

    `host_config` keys follow the Docker API HostConfig (e.g. "ReadonlyRootfs", "CapDrop",
    "Memory", "PidsLimit", "SecurityOpt", "Tmpfs"); `env` entries are added to the container env;
    `labels` to its labels. `applied` names the security settings this contribution guarantees,
    so the core can refuse to start when one is missing.
    """

    host_config: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    working_dir: str | None = None
    applied: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class JobLaunch:
    """What the executor needs to start the job container. The token and secret env values are
    `Secret`s; everything else is plain."""

    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    secret_env: Mapping[str, Secret]
    options: ContainerOptions
    script: bytes | None
    name: str


@dataclass(frozen=True)
class LogRecord:
    """One line (or a fragment of an over-long line) of job output."""

    seq: int
    stream: str  # "stdout" | "stderr"
    data: bytes  # includes the trailing b"\n" unless partial or the final unterminated line
    partial: bool = False

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True)
class JobResult:
    """The outcome of one execution."""

    execution_id: str
    job_id: str
    status: str
    exit_code: int | None
    started_at: float
    finished_at: float
    timings: Mapping[str, float]
    output: Any = None
    condition: bool | None = None
    error: str | None = None
    error_phase: str | None = None
    log_lines: int = 0
    warnings: tuple[str, ...] = ()
    #: True when the output passed `logs.max_bytes` and the sinks stored only that much.
    logs_truncated: bool = False

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    @property
    def cli_exit_code(self) -> int:
        if self.status == "succeeded":
            return 0
        if self.status == "failed":
            return self.exit_code if self.exit_code not in (None, 0) else 1
        return EXIT_CODES.get(self.status, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id, "job_id": self.job_id, "status": self.status,
            "exit_code": self.exit_code, "duration": round(self.duration, 4),
            "started_at": self.started_at, "finished_at": self.finished_at,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "output": self.output, "condition": self.condition, "error": self.error,
            "error_phase": self.error_phase, "log_lines": self.log_lines, "warnings": list(self.warnings),
            "logs_truncated": self.logs_truncated,
        }


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
