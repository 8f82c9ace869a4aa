"""Built-in plugin `swarm_executor`: runs the job as a Docker Swarm service (executor = "swarm").

The job is `cronium-job-<execution>`, a replicated service of one task that is never
restarted (not a replicated-job: see `_swarm.service_spec`), on the execution's overlay network only, pinned to the node its sidecar runs on (job and
sidecar share a node; see docs/swarm.md). It is created when
the core releases the job — after the sidecar is ready — so the token, signed at that moment,
counts its lifetime from there. What the Docker executor writes to the job's stdin (the secret env
block, then the script) is a Swarm secret of this attempt, mounted on a tmpfs readable by the job's
user only; the job's command first redirects its stdin from that file and then runs the Docker
executor's own prelude, so neither the token nor a secret value nor the script is in the service
spec, its env or its labels. The security profile maps onto the service spec (`_swarm.container_spec`);
no-new-privileges, which a Docker 20.10 service spec cannot hold, is set by `setpriv` before any
job code runs. Output is the task's log as the manager serves it, on any node, from its start
until the task ends; its exit code comes from the task list. Timeout and cancel stop the task's
container when it is on this engine, else remove the service (the swarm stops the task on its
node); SIGTERM, SIGKILL after the grace. `reap_orphans` removes orphaned job services and their
secrets anywhere in the swarm.
"""
from __future__ import annotations

import shlex
import threading
import time
from typing import Iterator

from cronium.core import hookimpl
from cronium.core.errors import PhaseError
from cronium.core.executor import ExitStatus
from cronium.core.model import DeferredSecret
from cronium.plugins import _swarm, _swarm_tasks
from cronium.plugins.docker_executor import job_argv, secret_block
from docker.errors import APIError, NotFound

#: This plugin belongs to the swarm executor: it takes part only in runs with executor = "swarm".
EXECUTOR = "swarm"
ROLE = "swarm-job"
STDIN_FILE = "cronium-job-stdin"


class SwarmJobHandle:
    """The job as a swarm service (see `cronium.core.executor.JobHandle`): created at `release()`."""

    def __init__(self, runtime, execution, network, launch, resources):
        self._runtime, self._execution, self._network = runtime, execution, network
        self._launch, self._resources = launch, resources
        self._client = runtime.docker
        self.container_id = ""
        self._frames: Iterator | None = None
        self._released = threading.Event()
        self._stopped = threading.Event()
        self._deadline = time.monotonic() + execution.timeout

    def start(self) -> None:
        """Nothing runs before the release: the service is created then."""

    def release(self) -> None:
        """Create the stdin secret (the token is signed now) and the service, pinned to the
        sidecar's node; wait for its task's container and follow its output."""
        try:
            self._create()
        finally:
            self._released.set()

    def _create(self) -> None:
        client, cfg, ex, launch = self._client, self._runtime.config, self._execution, self._launch
        labels = {**launch.options.labels, **ex.labels, "cronium.role": ROLE}
        stdin = secret_block(launch.secret_env) + (launch.script or b"")
        self._launch = None  # the secret values and the script are not kept
        secret_name = f"cronium-stdin-{ex.execution_id}-{ex.attempt_tag}"
        self._resources.add("swarm-secret", secret_name,
                            lambda: _swarm.remove_owned(client, "secret", secret_name, labels))
        secret_id = _swarm.create_secret(client, secret_name, stdin, labels)
        del stdin
        container, limits = _swarm.container_spec(
            _swarm.image_name(cfg, launch.image), self._argv(launch), launch.options, env=dict(launch.env), labels=labels, role="job",
            init=True, secrets=[_swarm.secret_ref(secret_id, secret_name, STDIN_FILE, launch.options.user)])
        limits["Reservations"] = reservations(ex)
        sidecar_node = _sidecar_node(client, ex.execution_id)
        spec = _swarm.service_spec(launch.name, labels=labels, container=container, resources=limits,
                                   networks=[{"Target": self._network.id}],
                                   constraints=_swarm.constraints(self._runtime, ex, f"node.id=={sidecar_node}"),
                                   stop_grace=cfg["limits.stop_grace"])
        self._resources.add("swarm-service", launch.name,
                            lambda: _swarm.remove_owned(client, "service", launch.name, labels))
        service_id = _swarm.create_service(client, spec, "job")
        self._deadline = time.monotonic() + ex.timeout
        task = _swarm_tasks.wait_for_task(client, service_id, cfg["swarm.task_timeout"], "job")
        self._service_id, self._task_id = service_id, task["ID"]
        self.container_id = _swarm_tasks.task_container(task)
        self._frames = _swarm_tasks.task_output(client, self._task_id)

    def _argv(self, launch) -> list[str]:
        """The Docker executor's command, with stdin redirected from the secret file first."""
        image_config = (self._client.api.inspect_image(launch.image).get("Config")
                        if self._execution.job_type == "container" else None)
        argv = job_argv(self._execution.job_type, launch.command, image_config)
        argv[2] = f"exec 0<{shlex.quote(f'{_swarm.SECRETS_DIR}/{STDIN_FILE}')}; " + argv[2]
        return argv

    def chunks(self) -> Iterator[tuple[int, bytes | None]]:
        self._released.wait()
        if self._frames is not None:
            yield from self._frames

    def exit_status(self) -> ExitStatus:
        """From the task list (wherever the task ran): its container's exit code; OOM only when the
        container is on this engine (the task list does not say)."""
        state, task, node_lost = _swarm_tasks.task_state(self._client, self._task_id)
        if task is None and self._stopped.is_set():
            return ExitStatus(exit_code=None, error="stopped: the job's service was removed")
        if node_lost is not None or task is None:
            raise PhaseError("job", f"the job's task ended without an outcome: {node_lost}; the job's exit "
                                    "status is unknown", hint="check the swarm's nodes (`docker node ls`)")
        status = task.get("Status") or {}
        exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
        if exit_code is None and not self._stopped.is_set():
            raise PhaseError("job", f"the job's task ended '{state}' without an exit code "
                                    f"({status.get('Err') or status.get('Message') or 'no reason given'}); "
                                    "the job's exit status is unknown", hint="check the swarm's nodes (`docker node ls`)")
        error = status.get("Err") if state != "complete" else None
        return ExitStatus(exit_code=exit_code, oom_killed=self._oom_killed(), error=error or None)

    def _oom_killed(self) -> bool:
        try:
            return bool(self._client.api.inspect_container(self.container_id)["State"].get("OOMKilled"))
        except (NotFound, APIError):
            return False  # the task ran on another node: the swarm does not report OOM

    def stop(self, grace: float) -> None:
        """A task on this engine: stop its container (SIGTERM, SIGKILL after `grace`; its exit code
        is kept, cleanup removes the rest). On another node: remove the job's service, so the swarm
        stops the task there (SIGTERM, SIGKILL after the service's stop grace, `limits.stop_grace`),
        and wait until the task list says it stopped (`_swarm.wait_tasks_stopped`)."""
        if self._stopped.is_set() or not self.container_id:
            return
        self._stopped.set()
        api = self._client.api
        try:
            api.stop(self.container_id, timeout=int(max(1, grace)))
            return
        except NotFound:
            pass  # not on this engine
        except APIError:
            return  # already gone
        _swarm.remove(self._client, "service", self._service_id, wait=0)


def reservations(execution) -> dict:
    """Resource reservations from the job's `[plugins.swarm]` settings (`reserve_cpus`,
    `reserve_memory`): what the swarm's scheduler keeps free for it on the node it picks."""
    from cronium.core.config import parse_size

    settings = dict(execution.plugin_settings.get("swarm") or {})
    out = {}
    if settings.get("reserve_cpus") is not None:
        out["NanoCPUs"] = int(float(settings["reserve_cpus"]) * 1e9)
    if settings.get("reserve_memory") is not None:
        out["MemoryBytes"] = parse_size(settings["reserve_memory"])
    return out


def _sidecar_node(client, execution_id: str) -> str:
    from cronium.plugins.sidecar import NAME_PREFIX

    for task in client.api.tasks(filters={"service": f"{NAME_PREFIX}{execution_id}"}):
        if task.get("NodeID"):
            return task["NodeID"]
    raise PhaseError("job", "the sidecar's task has no node: the job cannot be placed beside it")


@hookimpl(trylast=True)
def start_job(execution, network, launch, runtime, resources):
    _swarm.manager_node(runtime.docker, "job")
    secret_block({n: s for n, s in launch.secret_env.items() if not isinstance(s, DeferredSecret)})  # refuse early
    _swarm.container_spec(launch.image, list(launch.command), launch.options, env={}, labels={}, secrets=[],
                          role="job", init=True)  # refuse what the service spec cannot hold, before anything runs
    return SwarmJobHandle(runtime, execution, network, launch, resources)


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Orphaned job services and their stdin secrets."""
    _swarm.reap(runtime.docker, "service", ROLE, judge, dry_run, report)
    _swarm.reap(runtime.docker, "secret", ROLE, judge, dry_run, report)


