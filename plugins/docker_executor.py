"""Built-in plugin `docker_executor`: runs the job container on the Docker engine.

The container `cronium-job-<execution>` is created on the job network only, attached (stdin,
stdout, stderr) before it starts so no output can be missed, and started by the core once the
sidecar is ready. Secret env values (the execution token first of all) and the script travel over
stdin: a tiny `/bin/sh` prelude exports `NAME=value` lines up to an empty line, then writes the
script to the tmpfs work dir and execs the interpreter on it. So neither the token nor the script
appears in argv, in the container's config or in `docker inspect`, and no host path is mounted (a
remote engine works the same way). `reap_orphans` removes orphaned job containers and volumes.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

from cronium.core import hookimpl
from cronium.core.errors import PhaseError, UsageError
from cronium.core.executor import ExitStatus, check_engine_warnings
from cronium.plugins import _docker
from docker.errors import APIError

#: Reads `NAME=value` lines from stdin until an empty line and exports them.
SECRET_PRELUDE = 'while IFS= read -r _l && [ -n "$_l" ]; do export "$_l"; done; unset _l; '


def wrap_command(command: tuple[str, ...]) -> list[str]:
    """Prefix a command so that it first reads the secret env block from stdin."""
    if command[:2] == ("/bin/sh", "-c"):
        return ["/bin/sh", "-c", SECRET_PRELUDE + command[2], *command[3:]]
    return ["/bin/sh", "-c", SECRET_PRELUDE + 'exec "$@"', "sh", *command]


def secret_block(secret_env) -> bytes:
    lines = []
    for name, secret in secret_env.items():
        value = secret.reveal()
        if "\n" in value or "\0" in value:
            raise UsageError(f"secret environment value of {name} contains a newline or NUL byte")
        lines.append(f"{name}={value}\n")
    return ("".join(lines) + "\n").encode()


class DockerJobHandle:
    """A created, attached job container (see `cronium.core.executor.JobHandle`)."""

    def __init__(self, client, container_id: str, raw, stdin: bytes, *, timeout: float = 86400.0,
                 grace: float = 5.0):
        self._client = client
        self.container_id = container_id
        self._raw = raw
        self._stdin = stdin
        self._stopped = threading.Event()
        self._timeout, self._grace = timeout, grace
        self._deadline = time.monotonic() + timeout  # counted again from release()

    def start(self) -> None:
        try:
            self._client.api.start(self.container_id)
        except APIError as exc:
            raise PhaseError("job", f"the engine could not start the job container: {exc.explanation or exc}") from None

    def release(self) -> None:
        self._deadline = time.monotonic() + self._timeout
        _docker.send_and_close_stdin(self._raw, self._stdin)
        self._stdin = b""

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
        return ExitStatus(exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")),
                          error=state.get("Error") or None)

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


@hookimpl(trylast=True)
def start_job(execution, network, launch, runtime, resources):
    client, cfg = runtime.docker, runtime.config
    options = launch.options
    host_config = client.api.create_host_config(
        network_mode=network.name,
        log_config={"type": cfg["logs.docker_driver"], "config": {}},
        **_docker.host_config_kwargs(options.host_config))
    # Registered before the create call (by name): a create that times out on our side may still
    # complete in the engine.
    resources.add("container", launch.name, lambda: _docker.remove(client, "container", launch.name))
    try:
        created = client.api.create_container(
            launch.image, command=wrap_command(launch.command), name=launch.name, user=options.user,
            working_dir=options.working_dir, environment=dict(launch.env), stdin_open=True,
            labels={**execution.labels, **options.labels, "cronium.role": "job"}, host_config=host_config)
    except APIError as exc:
        raise _docker.create_error(exc, phase="job", name=launch.name, image=launch.image,
                                   role=f"{execution.job_type} job") from None
    container_id = created["Id"]
    check_engine_warnings(created.get("Warnings"), "job")
    raw = _docker.attach(client, container_id)
    stdin = secret_block(launch.secret_env) + (launch.script or b"")
    return DockerJobHandle(client, container_id, raw, stdin, timeout=execution.timeout,
                           grace=cfg["limits.stop_grace"])


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Orphaned job containers, and volumes labelled `cronium.managed`."""
    client = runtime.docker
    _docker.reap(client, "container", _docker.labelled(client, "container", "cronium.managed=true", "cronium.role=job"),
                 judge, dry_run, report)
    _docker.reap(client, "volume", _docker.labelled(client, "volume", "cronium.managed=true"), judge, dry_run, report)
