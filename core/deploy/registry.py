"""Deployments as the rest of cronium sees them: job definitions, workflow edges and scripts,
stored through `store.deployments` (the keys are described in core/store/deployments.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from .definition import Deployment, Edge, JobDefinition

if TYPE_CHECKING:
    from ..store import Store


class DeploymentRegistry:
    """Registers deployments and reads their jobs and scripts back, as `JobDefinition`s and `Edge`s."""

    def __init__(self, store: "Store"):
        self.store = store
        self.stored = store.deployments

    def register(self, deployment: Deployment, *, shared_namespace: str = "default",
                 replace: bool = False) -> dict[str, Any]:
        """Store the deployment, replacing its previous version atomically. Refused (`UsageError`,
        nothing changed): a job name owned by another deployment; unless `replace`, a deployment of
        the same name or a namespace (other than `shared_namespace`) registered from another file."""
        jobs = {name: (job.to_json(), [{"job": s, "when": e.when} for s, e in deployment.successors(name)])
                for name, job in deployment.jobs.items()}
        return self.stored.register(deployment.name, file=deployment.path, digest=deployment.digest,
                                    namespace=deployment.namespace, description=deployment.description, jobs=jobs,
                                    scripts=deployment.scripts, source=deployment.source,
                                    origin=deployment.origin, namespaces=deployment.namespaces(shared_namespace),
                                    replace=replace)

    def remove(self, name: str) -> dict[str, Any]:
        meta = self.meta(name)
        self.stored.remove(name, meta)
        return meta

    def names(self) -> list[str]:
        return self.stored.names()

    def meta(self, name: str) -> dict[str, Any]:
        meta = self.stored.meta(name)
        if meta is None:
            raise NotFound(f"no deployment '{name}'", hint="list deployments with `cronium deployments list`")
        return meta

    def source(self, name: str) -> str:
        self.meta(name)
        return self.stored.source(name)

    def generation(self) -> int:
        return self.stored.generation()

    def job_names(self) -> dict[str, str]:
        """Every deployed job -> its deployment."""
        return self.stored.job_names()

    def job(self, name: str) -> JobDefinition:
        raw = self.stored.definition(name)
        if raw is None:
            raise NotFound(f"no deployed job '{name}'", hint="list jobs with `cronium deployments list`, "
                                                             "deploy one with `cronium deploy FILE`")
        return JobDefinition.from_json(raw)

    def jobs(self) -> list[JobDefinition]:
        return [JobDefinition.from_json(r) for r in self.stored.definitions(list(self.job_names()))]

    def successors(self, name: str) -> list[Edge]:
        """The jobs that run after `name` (as edges: job = the successor, when = the condition)."""
        return [Edge(**e) for e in self.stored.successors(name)]

    def script(self, digest: str) -> bytes:
        body = self.stored.script(digest)
        if body is None:
            raise NotFound(f"the script {digest[:12]}… is no longer stored",
                           hint="deploy the job again (`cronium deploy FILE`)")
        return body
