"""Deployments in Redis: registering (atomically replacing) a deployment, reading jobs and scripts back."""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, UsageError
from ..model import dumps
from .definition import Deployment, Edge, JobDefinition

if TYPE_CHECKING:
    from ..store import Store


#: Seconds a script no job refers to any more is kept (queued executions may still need it).
ORPHAN_SCRIPT_TTL = 7 * 24 * 3600


class DeploymentRegistry:
    """Deployments in Redis: `P deployments` (set), `P deployment:<name>` (hash: meta, source),
    `P jobs` (hash job -> deployment), `P job:<name>` (hash: definition, deployment, successors),
    `P script:<sha256>` (script bytes), `P deploy:generation` (bumped on every change)."""

    def __init__(self, store: "Store"):
        self.store = store
        self.keys = store.keys
        self.redis = store.redis

    def register(self, deployment: Deployment) -> dict[str, Any]:
        """Store the deployment, replacing its previous version atomically. A job name owned by
        another deployment is refused (`UsageError`, nothing changed)."""
        import redis

        keys = self.keys
        with self.store.guard():
            for _ in range(20):
                with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(keys.jobs, keys.deployment(deployment.name))
                        owners = {k.decode(): v.decode() for k, v in pipe.hgetall(keys.jobs).items()}
                        taken = {j: owners[j] for j in deployment.jobs
                                 if owners.get(j, deployment.name) != deployment.name}
                        if taken:
                            raise UsageError(
                                f"{deployment.path}: " + "; ".join(
                                    f"key 'jobs.{j}': job name '{j}' already belongs to deployment '{d}'"
                                    for j, d in sorted(taken.items())),
                                hint="job names are unique across deployments: rename the job, or remove the other "
                                     "deployment first")
                        old_meta = pipe.hget(keys.deployment(deployment.name), "meta")
                        old = json.loads(old_meta) if old_meta else {}
                        old_jobs = set(old.get("jobs", []))
                        old_scripts = set(old.get("scripts", []))
                        now = time.time()
                        meta = {"name": deployment.name, "file": deployment.path, "digest": deployment.digest,
                                "deployed_at": now, "version": int(old.get("version", 0)) + 1,
                                "namespace": deployment.namespace, "description": deployment.description,
                                "jobs": sorted(deployment.jobs), "scripts": sorted(deployment.scripts)}
                        pipe.multi()
                        for digest, body in deployment.scripts.items():
                            pipe.set(keys.script(digest), body)  # also clears a TTL left by an earlier removal
                        for digest in old_scripts - set(deployment.scripts):
                            pipe.expire(keys.script(digest), ORPHAN_SCRIPT_TTL)
                        for job in old_jobs - set(deployment.jobs):
                            pipe.delete(keys.job(job), keys.schedule_state(job))
                            pipe.hdel(keys.jobs, job)
                        for name, job in deployment.jobs.items():
                            successors = [{"job": s, "when": e.when} for s, e in deployment.successors(name)]
                            pipe.delete(keys.job(name))
                            pipe.hset(keys.job(name), mapping={"definition": job.to_json(),
                                                               "deployment": deployment.name,
                                                               "successors": dumps(successors),
                                                               "deployed_at": str(now)})
                            pipe.hset(keys.jobs, name, deployment.name)
                        pipe.hset(keys.deployment(deployment.name), mapping={"meta": dumps(meta),
                                                                             "source": deployment.source})
                        pipe.sadd(keys.deployments, deployment.name)
                        pipe.incr(keys.deploy_generation)
                        pipe.execute()
                        meta["replaced"] = bool(old)
                        meta["removed_jobs"] = sorted(old_jobs - set(deployment.jobs))
                        return meta
                    except redis.WatchError:
                        continue
        raise UsageError("the deployment changed concurrently 20 times; try again")

    def remove(self, name: str) -> dict[str, Any]:
        meta = self.meta(name)
        keys = self.keys
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=True)
            for job in meta["jobs"]:
                pipe.delete(keys.job(job), keys.schedule_state(job))
                pipe.hdel(keys.jobs, job)
            for digest in meta.get("scripts", []):
                pipe.expire(keys.script(digest), ORPHAN_SCRIPT_TTL)
            pipe.delete(keys.deployment(name))
            pipe.srem(keys.deployments, name)
            pipe.incr(keys.deploy_generation)
            pipe.execute()
        return meta

    def names(self) -> list[str]:
        with self.store.guard():
            return sorted(n.decode() for n in self.redis.smembers(self.keys.deployments))

    def meta(self, name: str) -> dict[str, Any]:
        with self.store.guard():
            raw = self.redis.hget(self.keys.deployment(name), "meta")
        if raw is None:
            raise NotFound(f"no deployment '{name}'", hint="list deployments with `cronium deployments list`")
        return json.loads(raw)

    def source(self, name: str) -> str:
        self.meta(name)
        with self.store.guard():
            return (self.redis.hget(self.keys.deployment(name), "source") or b"").decode()

    def generation(self) -> int:
        with self.store.guard():
            return int(self.redis.get(self.keys.deploy_generation) or 0)

    def job_names(self) -> dict[str, str]:
        """Every deployed job -> its deployment."""
        with self.store.guard():
            return {k.decode(): v.decode() for k, v in sorted(self.redis.hgetall(self.keys.jobs).items())}

    def job(self, name: str) -> JobDefinition:
        with self.store.guard():
            raw = self.redis.hget(self.keys.job(name), "definition")
        if raw is None:
            raise NotFound(f"no deployed job '{name}'", hint="list jobs with `cronium deployments list`, "
                                                             "deploy one with `cronium deploy FILE`")
        return JobDefinition.from_json(raw)

    def jobs(self) -> list[JobDefinition]:
        names = list(self.job_names())
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=False)
            for n in names:
                pipe.hget(self.keys.job(n), "definition")
            rows = pipe.execute()
        return [JobDefinition.from_json(r) for r in rows if r]

    def successors(self, name: str) -> list[Edge]:
        """The jobs that run after `name` (as edges: job = the successor, when = the condition)."""
        with self.store.guard():
            raw = self.redis.hget(self.keys.job(name), "successors")
        return [Edge(**e) for e in json.loads(raw)] if raw else []

    def script(self, digest: str) -> bytes:
        with self.store.guard():
            body = self.redis.get(self.keys.script(digest))
        if body is None:
            raise NotFound(f"the script {digest[:12]}… is no longer stored",
                           hint="deploy the job again (`cronium deploy FILE`)")
        return body
