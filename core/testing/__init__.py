"""pytest fixtures for testing cronium plugins (and cronium itself) against the real engine.

Installed as a pytest plugin (entry point `pytest11: cronium`), so any test suite in an
environment with cronium installed can use them:

- `cronium_redis` — which Redis to use: `{"url", "sidecar_url", "network"}`. The default starts
  (or reuses) cronium's managed Redis; override it in your `conftest.py` to point at your own.
- `cronium_overrides` — extra config values (override it in your `conftest.py` or test class).
- `cronium_flags` — the config values of `cronium_config` (that Redis, a temporary log directory,
  the overrides), e.g. to start another process with the same configuration.
- `cronium_config` — a `Config` for tests built from `cronium_flags`.
- `cronium_runtime` — a `Runtime` on that config (plugins loaded from entry points, as in
  production); closed after the test.
- `cronium_run` — `cronium_run(script, job_type="python", **spec_fields) -> JobResult`: run one job
  through the whole lifecycle; the job's stdout/stderr are not printed.
- `docker_leftovers` — `docker_leftovers(execution_id=None) -> list[str]`: containers, networks and
  volumes still labelled `cronium.managed` (for one execution — by label or by name —, or any),
  except the idle pooled sidecars the live runtime keeps warm.
- `docker_inspect` — `docker_inspect(execution_id) -> str`: `docker inspect` of the execution's
  containers (by label or by name), as JSON text.
- `hook_recorder` — registers a plugin on `cronium_runtime` that records every notification hook
  as `(hook name, kwargs)` in `hook_recorder.calls`.

`ExecutorConformance` (`conformance.py`) is the executor conformance kit: a test class an executor
plugin subclasses to run the executor contract against itself.

Nothing here imports docker or redis until a fixture is used.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from ..engine_objects import Claims, execution_objects
from ..plugins import hookimpl
from .conformance import ExecutorConformance

__all__ = ["ExecutorConformance", "HookRecorder"]


@pytest.fixture(scope="session")
def cronium_redis():
    """Default: cronium's managed Redis (started if needed). Override in conftest.py."""
    from ..config import load_config, state_dir
    from ..host import services
    from ..runtime import connect_docker

    cfg = load_config()
    if not cfg.redis_managed:
        return {"url": cfg["redis.url"], "sidecar_url": cfg["redis.sidecar_url"] or cfg["redis.url"],
                "network": cfg["services.network"]}
    redis = services.ensure_redis(
        connect_docker(cfg), image=cfg["images.redis"], name=cfg["services.redis_container"],
        network=cfg["services.network"], volume=cfg["services.redis_volume"], port=cfg["services.redis_port"],
        state_dir=state_dir(), maxmemory=cfg["services.redis_maxmemory"])
    return {"url": redis.url, "sidecar_url": redis.network_url, "network": cfg["services.network"]}


@pytest.fixture
def cronium_overrides() -> dict[str, Any]:
    """Extra config values for `cronium_config` (override this fixture, or mutate it before use)."""
    return {}


@pytest.fixture
def cronium_flags(cronium_redis, cronium_overrides, tmp_path) -> dict[str, Any]:
    """The config values `cronium_config` is built from (JSON-serialisable)."""
    return {
        "redis.url": cronium_redis["url"],
        "redis.sidecar_url": cronium_redis["sidecar_url"],
        "services.network": cronium_redis["network"],
        "logs.dir": str(tmp_path / "logs"),
        **cronium_overrides,
    }


@pytest.fixture
def cronium_config(cronium_flags, tmp_path):
    from ..config import load_config

    return load_config(flags=cronium_flags, use_user_config=False, environ={}, cwd=tmp_path)


@pytest.fixture
def cronium_runtime(cronium_config):
    from ..runtime import Runtime

    rt = Runtime(cronium_config)
    yield rt
    rt.close()


@pytest.fixture
def cronium_run(cronium_runtime):
    from ..lifecycle import Orchestrator
    from ..model import JobSpec

    orchestrator = Orchestrator(cronium_runtime)

    def run(script: str | bytes | None = None, job_type: str = "python", *, events=None, cancel=None,
            on_result=None, **fields):
        if isinstance(script, str):
            script = script.encode()
        if job_type != "container":
            fields.setdefault("script_name", {"python": "job.py", "bash": "job.sh", "node": "job.js"}[job_type])
        spec = JobSpec(job_type=job_type, script=script, **fields)
        return orchestrator.run(spec, events=events, cancel=cancel, on_result=on_result)

    yield run
    orchestrator.close()


@pytest.fixture
def docker_leftovers(cronium_runtime):
    client = cronium_runtime.docker

    def leftovers(execution_id: str | None = None) -> list[str]:
        """Resources still labelled for `execution_id` (or any) or claimed for it (pooled sidecars
        and slots: `engine_objects`), plus containers named after it. Idle pooled sidecars
        (`cronium-pool-*`) of the live runtime are not leftovers."""
        label = "cronium.managed=true" if execution_id is None else f"cronium.execution={execution_id}"
        if execution_id is None:
            containers = client.api.containers(all=True, filters={"label": label})
            networks = client.api.networks(filters={"label": label})
        else:
            claims = Claims.read_or_none(cronium_runtime.store)
            containers = execution_objects(client, claims, "container", execution_id)
            containers += client.api.containers(all=True, filters={"name": execution_id})
            networks = execution_objects(client, claims, "network", execution_id)
        names = sorted({c["Names"][0].lstrip("/") for c in containers})
        found = [f"container {n}" for n in names if not n.startswith("cronium-pool-")]
        found += [f"network {n['Name']}" for n in networks]
        found += [f"volume {v['Name']}" for v in (client.api.volumes(filters={"label": label}).get("Volumes") or [])]
        return found

    return leftovers


@pytest.fixture
def docker_inspect(cronium_runtime):
    api = cronium_runtime.docker.api

    def inspect(execution_id: str) -> str:
        """`docker inspect` of every container of `execution_id` (labelled or claimed for it:
        `engine_objects`) or named after it."""
        claims = Claims.read_or_none(cronium_runtime.store)
        found = execution_objects(cronium_runtime.docker, claims, "container", execution_id)
        found += api.containers(all=True, filters={"name": execution_id})
        return json.dumps([api.inspect_container(c_id) for c_id in sorted({c["Id"] for c in found})])

    return inspect


class HookRecorder:
    """A plugin object that records every notification it receives, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    @hookimpl
    def startup(self, runtime):
        self.calls.append(("startup", {"runtime": runtime}))

    @hookimpl
    def token_issued(self, execution, claims):
        self.calls.append(("token_issued", {"execution": execution, "claims": claims}))

    @hookimpl
    def network_created(self, execution, network):
        self.calls.append(("network_created", {"execution": execution, "network": network}))

    @hookimpl
    def sidecar_started(self, execution, sidecar):
        self.calls.append(("sidecar_started", {"execution": execution, "sidecar": sidecar}))

    @hookimpl
    def job_started(self, execution, container_id):
        self.calls.append(("job_started", {"execution": execution, "container_id": container_id}))

    @hookimpl
    def job_finished(self, execution, result):
        self.calls.append(("job_finished", {"execution": execution, "result": result}))

    @hookimpl
    def cleanup(self, execution, result):
        self.calls.append(("cleanup", {"execution": execution, "result": result}))


@pytest.fixture
def hook_recorder(cronium_runtime):
    recorder = HookRecorder()
    cronium_runtime.pm.register(recorder, name="hook-recorder")
    yield recorder
    cronium_runtime.pm.unregister(recorder)
