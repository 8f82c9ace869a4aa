"""Deployments: `P deployments` (set of names), `P deployment:<name>` (hash: `meta` JSON, `source`),
`P jobs` (hash: job -> deployment), `P job:<name>` (hash: `definition` JSON, `deployment`,
`successors` JSON, `deployed_at`), `P script:<sha256>` (script bytes) and `P deploy:generation`
(bumped on every change).

The repository stores and returns text; `core/deploy/registry.py` turns it into job definitions.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import redis

from ..errors import UsageError
from ..model import dumps

if TYPE_CHECKING:
    from . import Store

#: Seconds a script no job refers to any more is kept (queued executions may still need it).
ORPHAN_SCRIPT_TTL = 7 * 24 * 3600
#: Attempts at registering while other deploys change the same keys.
REGISTER_ATTEMPTS = 20


class Deployments:
    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    def register(self, name: str, *, file: str, digest: str, namespace: str | None, description: str,
                 jobs: Mapping[str, tuple[str, Sequence[Mapping[str, str]]]], scripts: Mapping[str, bytes],
                 source: str, origin: str = "", namespaces: Sequence[str] = (), replace: bool = False) -> dict[str, Any]:
        """Store a deployment, replacing its previous version atomically (WATCH/MULTI). `jobs` maps
        each job name to (definition JSON, successor edges as {job, when}). Refused (`UsageError`,
        nothing changed): a job name owned by another deployment; unless `replace`, a deployment of
        this name registered from another `origin`, or one of `namespaces` claimed by a deployment
        from another origin. Returns the new `meta`, plus `replaced` and `removed_jobs`."""
        keys = self.keys
        with self.store.guard():
            for _ in range(REGISTER_ATTEMPTS):
                with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(keys.jobs, keys.deployment(name), keys.deploy_generation)
                        owners = {k.decode(): v.decode() for k, v in pipe.hgetall(keys.jobs).items()}
                        _refuse_taken(file, {j: owners[j] for j in jobs if owners.get(j, name) != name})
                        old_meta = pipe.hget(keys.deployment(name), "meta")
                        old = json.loads(old_meta) if old_meta else {}
                        if not replace:
                            _refuse_takeover(file, name, origin, namespaces, old, self._other_metas(pipe, name))
                        now = time.time()
                        meta = {"name": name, "file": file, "digest": digest, "deployed_at": now,
                                "version": int(old.get("version", 0)) + 1, "namespace": namespace,
                                "description": description, "jobs": sorted(jobs), "scripts": sorted(scripts),
                                "origin": origin, "namespaces": sorted(namespaces)}
                        pipe.multi()
                        self._write(pipe, meta, old, jobs, scripts, source)
                        pipe.execute()
                        meta["replaced"] = bool(old)
                        meta["removed_jobs"] = sorted(set(old.get("jobs", [])) - set(jobs))
                        return meta
                    except redis.WatchError:
                        continue
        raise UsageError(f"the deployment changed concurrently {REGISTER_ATTEMPTS} times; try again")

    def _other_metas(self, pipe, name: str) -> list[dict[str, Any]]:
        """The metas of every other registered deployment (read inside register's WATCH)."""
        others = sorted(n.decode() for n in pipe.smembers(self.keys.deployments) if n.decode() != name)
        raw = [pipe.hget(self.keys.deployment(n), "meta") for n in others]
        return [json.loads(r) for r in raw if r]

    def _write(self, pipe, meta: Mapping[str, Any], old: Mapping[str, Any],
               jobs: Mapping[str, tuple[str, Sequence[Mapping[str, str]]]], scripts: Mapping[str, bytes],
               source: str) -> None:
        """The commands of `register` after MULTI: the new version, and what the old one no longer has."""
        keys, name = self.keys, meta["name"]
        for digest, body in scripts.items():
            pipe.set(keys.script(digest), body)  # also clears a TTL left by an earlier removal
        for digest in set(old.get("scripts", [])) - set(scripts):
            pipe.expire(keys.script(digest), ORPHAN_SCRIPT_TTL)
        for job in set(old.get("jobs", [])) - set(jobs):
            pipe.delete(keys.job(job), keys.schedule_state(job))
            pipe.hdel(keys.jobs, job)
        for job, (definition, successors) in jobs.items():
            pipe.delete(keys.job(job))
            pipe.hset(keys.job(job), mapping={"definition": definition, "deployment": name,
                                              "successors": dumps(list(successors)),
                                              "deployed_at": str(meta["deployed_at"])})
            pipe.hset(keys.jobs, job, name)
        pipe.hset(keys.deployment(name), mapping={"meta": dumps(meta), "source": source})
        pipe.sadd(keys.deployments, name)
        pipe.incr(keys.deploy_generation)

    def remove(self, name: str, meta: Mapping[str, Any]) -> None:
        """Remove a deployment (its `meta` as `meta()` returned it): its jobs and their schedule
        state go, its scripts expire after ORPHAN_SCRIPT_TTL."""
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

    def names(self) -> list[str]:
        with self.store.guard():
            return sorted(n.decode() for n in self.redis.smembers(self.keys.deployments))

    def meta(self, name: str) -> dict[str, Any] | None:
        with self.store.guard():
            raw = self.redis.hget(self.keys.deployment(name), "meta")
        return json.loads(raw) if raw is not None else None

    def source(self, name: str) -> str:
        with self.store.guard():
            return (self.redis.hget(self.keys.deployment(name), "source") or b"").decode()

    def generation(self) -> int:
        with self.store.guard():
            return int(self.redis.get(self.keys.deploy_generation) or 0)

    def job_names(self) -> dict[str, str]:
        """Every deployed job -> its deployment."""
        with self.store.guard():
            return {k.decode(): v.decode() for k, v in sorted(self.redis.hgetall(self.keys.jobs).items())}

    def definition(self, job: str) -> bytes | None:
        """The job's definition (JSON), None when no such job is deployed."""
        with self.store.guard():
            return self.redis.hget(self.keys.job(job), "definition")

    def definitions(self, jobs: Sequence[str]) -> list[bytes]:
        """The definitions (JSON) of these jobs, leaving out the ones not deployed (any more)."""
        with self.store.guard():
            pipe = self.redis.pipeline(transaction=False)
            for job in jobs:
                pipe.hget(self.keys.job(job), "definition")
            rows = pipe.execute()
        return [r for r in rows if r]

    def successors(self, job: str) -> list[dict[str, str]]:
        """The edges {job, when} of the jobs that run after `job`."""
        with self.store.guard():
            raw = self.redis.hget(self.keys.job(job), "successors")
        return json.loads(raw) if raw else []

    def deployed_at(self, job: str) -> float | None:
        """When the job's current version was deployed (unix time)."""
        with self.store.guard():
            raw = self.redis.hget(self.keys.job(job), "deployed_at")
        return float(raw) if raw else None

    def script(self, digest: str) -> bytes | None:
        with self.store.guard():
            return self.redis.get(self.keys.script(digest))


def _refuse_taken(file: str, taken: Mapping[str, str]) -> None:
    """Job names are unique across deployments: refuse the ones another deployment owns."""
    if taken:
        raise UsageError(
            f"{file}: " + "; ".join(f"key 'jobs.{j}': job name '{j}' already belongs to deployment '{d}'"
                                    for j, d in sorted(taken.items())),
            hint="job names are unique across deployments: rename the job, or remove the other deployment first")


def _refuse_takeover(file: str, name: str, origin: str, namespaces: Sequence[str], old: Mapping[str, Any],
                     others: Sequence[Mapping[str, Any]]) -> None:
    """A deployment file takes neither another file's deployment (same name, other origin) nor a
    namespace another file's deployment runs jobs in — unless the deployer says `--replace`."""
    problems = []
    if old and old.get("origin", "") != origin:
        problems.append(f"key 'deployment.name': deployment '{name}' was registered from "
                        f"{old.get('origin') or old.get('file') or 'another file'}; this file would replace it")
    for namespace in namespaces:
        holders = sorted(m["name"] for m in others if namespace in m.get("namespaces", [])
                         and m.get("origin", "") != origin)
        if holders:
            problems.append(f"namespace '{namespace}' belongs to deployment '{holders[0]}' "
                            f"(registered from another file)")
    if problems:
        raise UsageError(f"{file}: " + "; ".join(problems),
                         hint="deploy from the file that registered it, or pass --replace to take it over "
                              "(its variables and its name then serve this file's jobs)")
