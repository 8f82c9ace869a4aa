"""What a deployment declares: job definitions (as stored in Redis), retry policies, workflow edges."""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import socket
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

from ..errors import SecretUnavailable
from ..model import RETRYABLE_STATUSES, JobSpec, Resources, Secret, dumps

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SECRET_REF_RE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
#: Worker variables a secret reference may never name, whatever `worker.secret_env_allow` says:
#: cronium's own settings (the Redis URL with its password, the token secret, …).
ALWAYS_DENIED_SECRETS = "CRONIUM_*"
CONCURRENCY_POLICIES = ("allow", "forbid", "replace")
#: Workflow edge conditions: when the parent execution ends …
EDGE_CONDITIONS = ("succeeded", "failed", "condition_true", "condition_false", "always")


def secret_ref_refusal(var: str, allow: Sequence[str]) -> str | None:
    """Why the worker variable `var` may not be handed to a job as a secret (None: it may). `allow`
    is `worker.secret_env_allow`: names or globs; `CRONIUM_*` is refused even when listed."""
    if fnmatch.fnmatchcase(var, ALWAYS_DENIED_SECRETS):
        return (f"refers to ${var}: CRONIUM_* variables are cronium's own settings and are never "
                "handed to jobs")
    if not any(fnmatch.fnmatchcase(var, pattern) for pattern in allow):
        return f"refers to ${var}, which is not in worker.secret_env_allow"
    return None


#: The fix for a refused secret reference.
SECRET_ALLOW_HINT = ("list the variable (or a glob such as SYNC_*) in worker.secret_env_allow, in the config "
                     "of the deploying host and of every worker")


@dataclass(frozen=True)
class RetryPolicy:
    """Failed executions are retried as new executions of the same job, `limit` times, after
    `backoff * factor**(attempt-1)` seconds (at most `max_backoff`)."""

    limit: int = 0
    backoff: float = 10.0
    factor: float = 2.0
    max_backoff: float = 600.0
    on: tuple[str, ...] = RETRYABLE_STATUSES

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1)."""
        return min(self.max_backoff, self.backoff * self.factor ** max(0, attempt - 1))


@dataclass(frozen=True)
class Edge:
    """Run the job that declares this edge after `job` ends with `when`."""

    job: str
    when: str = "succeeded"

    def matches(self, status: str, condition: bool | None) -> bool:
        if self.when == "always":
            return True
        if self.when == "succeeded":
            return status == "succeeded"
        if self.when == "failed":
            return status != "succeeded"
        if status != "succeeded":  # condition edges need a finished, successful parent
            return False
        return condition is (self.when == "condition_true")


@dataclass(frozen=True)
class JobDefinition:
    """One job of a deployment, as stored in Redis (the script body is stored by digest)."""

    name: str
    deployment: str
    job_type: str
    script_name: str | None = None
    script_digest: str | None = None
    script_bytes: int | None = None
    image: str | None = None
    command: tuple[str, ...] = ()
    input: Any = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)  # name -> "env:VAR" (a reference)
    schedule: str | None = None
    timezone: str = "UTC"
    timeout: float | None = None
    resources: Resources = Resources()
    profile: str | None = None
    namespace: str | None = None
    egress: bool = False
    retries: RetryPolicy = RetryPolicy()
    concurrency: str = "allow"
    after: tuple[Edge, ...] = ()
    plugins: Mapping[str, Any] = field(default_factory=dict)
    suspend: bool = False
    description: str = ""
    source: str = ""  # the deployment file it came from
    executor: str | None = None  # None: the worker's config `executor`
    placement: tuple[str, ...] = ()

    def to_json(self) -> str:
        return dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> "JobDefinition":
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in json.loads(text).items() if k in known}  # tolerate newer writers
        data["command"] = tuple(data.get("command") or ())
        data["resources"] = Resources(**(data.get("resources") or {}))
        retries = data.get("retries") or {}
        retries["on"] = tuple(retries.get("on") or RETRYABLE_STATUSES)
        data["retries"] = RetryPolicy(**retries)
        data["after"] = tuple(Edge(**e) for e in data.get("after") or ())
        data["placement"] = tuple(data.get("placement") or ())
        return cls(**data)

    def resolve_secrets(self, environ: Mapping[str, str] | None = None,
                        allow: Sequence[str] | None = None) -> dict[str, Secret]:
        """Look the secret references up in this process's environment (on the worker). With
        `allow` (the worker's `worker.secret_env_allow`), a reference it does not allow is refused
        before any value is read."""
        environ = os.environ if environ is None else environ
        out = {}
        for name, ref in self.secret_env.items():
            var = SECRET_REF_RE.match(ref).group(1)
            refusal = secret_ref_refusal(var, allow) if allow is not None else None
            if refusal is not None:
                raise SecretUnavailable(f"secret env {name} of job '{self.name}' {refusal} on worker host "
                                        f"{socket.gethostname()}", hint=SECRET_ALLOW_HINT)
            if var not in environ:
                raise SecretUnavailable(
                    f"secret env {name} of job '{self.name}' refers to ${var}, which is not set on worker host "
                    f"{socket.gethostname()}",
                    hint=f"export {var} in the environment of every `cronium worker` / `cronium serve`")
            out[name] = Secret(environ[var])
        return out

    def job_spec(self, script: bytes | None, *, execution_id: str, input: Any, attempt: int = 1,
                 metadata: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                 allow: Sequence[str] | None = None) -> JobSpec:
        """The spec a worker runs: secrets resolved now, from the worker's environment (checked
        against `allow`, see `resolve_secrets`)."""
        return JobSpec(
            job_type=self.job_type, script=script, script_name=self.script_name, image=self.image,
            command=self.command, input=input, env=dict(self.env), secret_env=self.resolve_secrets(environ, allow),
            timeout=self.timeout, resources=self.resources, profile=self.profile, namespace=self.namespace,
            job_id=self.name, job_name=self.name, egress=self.egress, metadata=dict(metadata or {}),
            execution_id=execution_id, attempt=attempt, plugin_settings=dict(self.plugins), executor=self.executor,
            placement=self.placement)


@dataclass
class Deployment:
    """A validated deployment file: its jobs and their script contents (digest -> bytes)."""

    name: str
    path: str
    source: str
    jobs: dict[str, JobDefinition]
    scripts: dict[str, bytes]
    namespace: str | None = None
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    origin: str = ""  # where it came from (the file's resolved path): see `files.parse_deployment`

    @property
    def digest(self) -> str:
        body = dumps({"jobs": {n: json.loads(j.to_json()) for n, j in sorted(self.jobs.items())}})
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def namespaces(self, shared: str) -> list[str]:
        """The namespaces its jobs run in that it claims: every explicit one but `shared` (the
        configured default namespace, which every ad-hoc run uses too)."""
        return sorted({j.namespace for j in self.jobs.values() if j.namespace and j.namespace != shared})

    def successors(self, job: str) -> list[tuple[str, Edge]]:
        """Jobs that run after `job`, with the edge that connects them."""
        return [(name, edge) for name, d in sorted(self.jobs.items()) for edge in d.after if edge.job == job]


