"""Built-in plugin `docker_executor`: runs the job container on the Docker engine.

The container `cronium-job-<execution>` is created on the job network only, attached (stdin,
stdout, stderr) before it starts so no output can be missed, and started by the core once the
sidecar is ready. Secret env values (the execution token first of all) and the script travel over
stdin: a tiny `/bin/sh` prelude exports `NAME=value` lines up to an empty line, then writes the
script to the tmpfs work dir and execs the interpreter on it. So neither the token nor the script
appears in argv, in the container's config or in `docker inspect`, and no host path is mounted (a
remote engine works the same way). `reap_orphans` removes orphaned job containers and volumes.

The prelude is the container's entrypoint, so the image's own `ENTRYPOINT` never sees the secret
block on stdin. Container jobs (`--image`) still run the image's entrypoint, after the prelude, as
docker would: `ENTRYPOINT + command` (the command replaces the image's `CMD`). Script jobs
ignore the image's entrypoint: they run the interpreter on the script. The container runs with an
init (`docker-init`) as PID 1, so the job is not PID 1: SIGTERM (timeout, cancel) reaches it with
its default action, and a job that traps SIGTERM still gets `limits.stop_grace`.

While the job runs, a sampler reads the engine's stats of the container (`one_shot`, no
waiting; at most `STATS_IN_FLIGHT` calls of the process at once) one second after the release,
then at doubling intervals up to every 8 seconds, and keeps
the highest memory figure (the kernel's own peak on cgroup v1, so a peak between two samples is
not lost there; on cgroup v2 the usage at the samples) and the CPU seconds used;
`exit_status()` hands them to the core, which keeps them on the record (`memory_peak`,
`cpu_seconds`: the CPU time at the last sample). A job shorter than the first sample has none.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from cronium.core import hookimpl, usage
from cronium.core.errors import PhaseError, UsageError
from cronium.core.executor import ExitStatus, check_engine_warnings
from cronium.core.model import DeferredSecret
from cronium.plugins import _docker
from docker.errors import APIError

#: This plugin belongs to the Docker executor: it takes part only in runs with executor = "docker".
EXECUTOR = "docker"
#: Reads `NAME=value` lines from stdin until an empty line and exports them.
SECRET_PRELUDE = 'while IFS= read -r _l && [ -n "$_l" ]; do export "$_l"; done; unset _l; '
#: Seconds from the release to the first stats sample of a running job container; the interval
#: then doubles up to SAMPLE_MAX_INTERVAL (each sample is an engine call: 200 running jobs sampled
#: every second kept the engine busy with 200 stats calls a second).
SAMPLE_INTERVAL = 1.0
SAMPLE_MAX_INTERVAL = 8.0
#: Stats calls of one process in flight at once (each wakes dockerd, containerd and the container's
#: shim: with 200 jobs running, unbounded sampling made every call take seconds).
STATS_IN_FLIGHT = 2


def wrap_command(command: tuple[str, ...]) -> list[str]:
    """Prefix a command so that it first reads the secret env block from stdin."""
    if command[:2] == ("/bin/sh", "-c"):
        return ["/bin/sh", "-c", SECRET_PRELUDE + command[2], *command[3:]]
    return ["/bin/sh", "-c", SECRET_PRELUDE + 'exec "$@"', "sh", *command]


def job_argv(job_type: str, command: tuple[str, ...], image_config: dict | None) -> list[str]:
    """What the job container runs: the secret prelude, then — for container jobs — the image's
    ENTRYPOINT followed by the job's command (which replaces the image's CMD, as with `docker run
    IMAGE CMD`); script jobs run their command alone (the image's entrypoint is ignored)."""
    if job_type == "container":
        command = (*((image_config or {}).get("Entrypoint") or ()), *command)
    return wrap_command(tuple(command))


def secret_block(secret_env) -> bytes:
    lines = []
    for name, secret in secret_env.items():
        value = secret.reveal()
        if "\n" in value or "\0" in value:
            raise UsageError(f"secret environment value of {name} contains a newline or NUL byte")
        lines.append(f"{name}={value}\n")
    return ("".join(lines) + "\n").encode()


class UsageSampler:
    """Samples a container's stats until stopped: the highest memory peak and the last CPU seconds."""

    def __init__(self, client, container_id: str, interval: float = SAMPLE_INTERVAL,
                 max_interval: float = SAMPLE_MAX_INTERVAL, gate=None):
        self._client, self._id, self._interval, self._max_interval = client, container_id, interval, max_interval
        self._gate = gate if gate is not None else contextlib.nullcontext()
        self._stop = threading.Event()
        self.memory_peak: int | None = None
        self.cpu_seconds: float | None = None
        self._thread = threading.Thread(target=self._loop, name=f"stats-{container_id[:12]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling. Never waits for a call in flight (on a busy engine one takes seconds):
        what was sampled until now is what counts."""
        self._stop.set()

    def _loop(self) -> None:
        interval = self._interval
        # Not at once: right after the release the job has barely started (and a short job is
        # over before the first sample — its record has no figures, as before).
        while not self._stop.wait(interval):
            with self._gate:
                if self._stop.is_set():
                    return
                try:
                    stats = self._client.api.stats(self._id, stream=False, one_shot=True)
                except Exception:
                    return  # the container is gone (or the engine): keep what was sampled
            self.take(stats)
            interval = min(interval * 2, self._max_interval)

    def take(self, stats) -> None:
        peak, cpu = usage.memory_peak(stats), usage.cpu_seconds(stats)
        if peak > 0:  # a stopped container's document is empty
            self.memory_peak = max(peak, self.memory_peak or 0)
        if cpu > 0:
            self.cpu_seconds = max(cpu, self.cpu_seconds or 0.0)


class DockerJobHandle:
    """A created, attached job container (see `cronium.core.executor.JobHandle`)."""

    def __init__(self, client, container_id: str, raw, secret_env, script: bytes | None, *,
                 timeout: float = 86400.0, grace: float = 5.0, stats_gate=None):
        self._client = client
        self.container_id = container_id
        self._raw = raw
        self._secret_env, self._script = secret_env, script or b""
        self._stopped = threading.Event()
        self._timeout, self._grace = timeout, grace
        self._deadline = time.monotonic() + timeout  # counted again from release()
        self._sampler = UsageSampler(client, container_id, gate=stats_gate)

    def start(self) -> None:
        try:
            self._client.api.start(self.container_id)
        except APIError as exc:
            raise PhaseError("job", f"the engine could not start the job container: {exc.explanation or exc}") from None

    def release(self) -> None:
        """Deliver the secret env block and the script. The values are revealed now: the
        execution token is signed at this moment (its lifetime counts from the release)."""
        stdin = secret_block(self._secret_env) + self._script
        self._secret_env, self._script = {}, b""
        self._deadline = time.monotonic() + self._timeout
        _docker.send_and_close_stdin(self._raw, stdin)
        self._sampler.start()

    def chunks(self) -> Iterator[tuple[int, bytes | None]]:
        try:
            yield from _docker.read_frames(self._raw)
        finally:
            _docker.close(self._raw)

    def exit_status(self) -> ExitStatus:
        api = self._client.api
        try:
            state = api.inspect_container(self.container_id)["State"]
            if state.get("Running"):
                self._wait_until_stopped()
                state = api.inspect_container(self.container_id)["State"]
        except Exception as exc:
            if _docker.engine_unreachable(exc):
                raise PhaseError("job", "lost contact with the Docker engine during the job (it stopped or "
                                        "restarted); the job's outcome is unknown",
                                 hint="check the engine with `cronium doctor`; its resources are removed once "
                                      "it is back") from None
            raise
        finally:
            self._sampler.stop()
        return ExitStatus(exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")),
                          error=state.get("Error") or None, memory_peak=self._sampler.memory_peak,
                          cpu_seconds=self._sampler.cpu_seconds)

    def _wait_until_stopped(self) -> None:
        """The output ended but the container still runs (a job may close its stdout and stderr
        and go on): wait for it to exit, never past its deadline — then stop it."""
        import requests

        left = max(1.0, self._deadline - time.monotonic())
        try:
            self._client.api.wait(self.container_id, timeout=left, condition="not-running")
            return
        except requests.exceptions.RequestException as exc:
            timed_out = isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower()
            if not timed_out:
                raise
        self.stop(self._grace)
        self._client.api.wait(self.container_id, timeout=self._grace + 30, condition="not-running")

    def stop(self, grace: float) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._client.api.stop(self.container_id, timeout=int(max(1, grace)))
        except APIError:
            try:
                self._client.api.kill(self.container_id)
            except APIError:
                pass  # already gone


def job_host_config(client, cfg, network_name: str, options) -> dict:
    """The HostConfig of a job container on `network_name` with the job's container `options`
    (as plugins contributed them). init=True: docker-init is PID 1 and forwards signals, so the
    job's own process is not PID 1 and a SIGTERM it does not handle ends it (timeout and cancel
    are prompt). Used by `start_job` and by pooled slots (`_slots`) for their held containers."""
    return client.api.create_host_config(
        network_mode=network_name, init=True, log_config={"type": cfg["logs.docker_driver"], "config": {}},
        **_docker.host_config_kwargs(options.host_config))


@hookimpl(trylast=True)
def start_job(execution, network, launch, runtime, resources):
    client, cfg = runtime.docker, runtime.config
    options = launch.options
    host_config = job_host_config(client, cfg, network.name, options)
    # Registered before the create call (by name): a create that times out on our side may still
    # complete in the engine. Removed only while it is this attempt's (by its labels, then by id;
    # once created, by the id the engine gave: `_docker.Owned`).
    labels = {**options.labels, **execution.labels, "cronium.role": "job"}
    owned = _docker.Owned(client, "container", launch.name, labels)
    resources.add("container", launch.name, owned.remove)
    try:
        image_config = (client.api.inspect_image(launch.image).get("Config") if execution.job_type == "container"
                        else None)
        argv = job_argv(execution.job_type, launch.command, image_config)
        # The prelude is the entrypoint: the image's own ENTRYPOINT must never get the secret stdin.
        created = client.api.create_container(
            launch.image, entrypoint=argv[:2], command=argv[2:], name=launch.name, user=options.user,
            working_dir=options.working_dir, environment=dict(launch.env), stdin_open=True,
            labels=labels, host_config=host_config)
    except APIError as exc:
        ours = launch.image in (cfg["images.python"], cfg["images.bash"], cfg["images.node"])
        raise _docker.create_error(exc, phase="job", name=launch.name, image=launch.image,
                                   role=f"{execution.job_type} job", own_image=not ours) from None
    container_id = owned.created(created["Id"])
    check_engine_warnings(created.get("Warnings"), "job")
    secret_block({n: s for n, s in launch.secret_env.items() if not isinstance(s, DeferredSecret)})  # refuse early
    raw = _docker.attach(client, container_id)
    return DockerJobHandle(client, container_id, raw, launch.secret_env, launch.script, timeout=execution.timeout,
                           grace=cfg["limits.stop_grace"], stats_gate=runtime.gate("stats", STATS_IN_FLIGHT))


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Orphaned job containers, and volumes labelled `cronium.managed`."""
    client = runtime.docker
    _docker.reap(client, "container", _docker.labelled(client, "container", "cronium.managed=true", "cronium.role=job"),
                 judge, dry_run, report)
    _docker.reap(client, "volume", _docker.labelled(client, "volume", "cronium.managed=true"), judge, dry_run, report)
