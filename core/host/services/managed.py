"""Ensure, inspect, stop and remove the managed Redis, and how to reach it."""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ...config import parse_size
from ...errors import ImageMissing, StoreUnavailable
from .objects import (
    LABEL_AUTH,
    LABEL_MAXMEMORY,
    LABEL_SPEC,
    REDIS_PORT,
    NameTaken,
    Progress,
    ServiceError,
    attached_to,
    create_container,
    digest,
    ensure_network,
    find,
    get_container,
    owned,
    refuse_foreign,
    remove_container,
    service_label,
    spec_digest,
    start_container,
)
from .password import load_or_create_password, password_path

DEFAULT_IMAGE = "cronium/redis:latest"
DEFAULT_NAME = "cronium-redis"
DEFAULT_NETWORK = "cronium-services"
DEFAULT_VOLUME = "cronium-redis-data"
DEFAULT_PORT = 6390
DEFAULT_MAXMEMORY = "256mb"


@dataclass(frozen=True)
class ManagedRedis:
    """How to reach the managed Redis. `repr()` never shows the password."""

    name: str
    container_id: str
    host: str  # for the orchestrator on this host
    port: int
    network: str
    network_host: str  # for containers on `network`
    network_port: int
    action: str  # "reused" | "started" | "created"
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<port>/0`` for the orchestrator (a secret)."""
        return f"redis://:{quote(self.password, safe='')}@{self.host}:{self.port}/0"

    @property
    def network_url(self) -> str:
        """``redis://:<password>@cronium-redis:6379/0`` for containers on the services network (a secret)."""
        return f"redis://:{quote(self.password, safe='')}@{self.network_host}:{self.network_port}/0"

    @property
    def redacted_url(self) -> str:
        return f"redis://:***@{self.host}:{self.port}/0"


@dataclass(frozen=True)
class RedisStatus:
    name: str
    exists: bool
    running: bool = False
    state: str = "missing"  # docker's state: running, exited, created, … or missing
    container_id: str | None = None
    image: str | None = None  # image id the container runs
    host_port: int | None = None
    networks: tuple[str, ...] = ()
    volume: str | None = None
    healthy: bool | None = None  # PING answered (None: not checked)
    managed: bool = False  # carries cronium's service label


def ensure_redis(client, *, image: str = DEFAULT_IMAGE, name: str = DEFAULT_NAME, network: str = DEFAULT_NETWORK,
                 volume: str = DEFAULT_VOLUME, port: int = DEFAULT_PORT, state_dir: os.PathLike | str,
                 maxmemory: str | int = DEFAULT_MAXMEMORY, timeout: float = 30.0,
                 progress: Progress | None = None) -> ManagedRedis:
    """Make sure the managed Redis runs and answers PING; return how to reach it.

    Idempotent: a running container is reused as it is (even when its image was rebuilt since, so
    that jobs using it are not disturbed); a stopped one is started; a missing one is created.
    A container whose password, port, network or volume no longer match is re-created (the data
    volume is kept); so is a stopped one whose image or `maxmemory` (bytes, or a size such as
    "256mb"; policy noeviction) changed since.
    """
    with _state_lock(state_dir, name):
        return _ensure_redis_locked(client, image=image, name=name, network=network, volume=volume, port=port,
                                    state_dir=state_dir, maxmemory=parse_size(maxmemory), timeout=timeout,
                                    progress=progress)


@contextlib.contextmanager
def _state_lock(state_dir: os.PathLike | str, name: str):
    """Serialise ensure_redis between cronium processes (and threads) on this host."""
    Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(Path(state_dir) / f".{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ensure_redis_locked(client, *, image, name, network, volume, port, state_dir, maxmemory, timeout,
                         progress) -> ManagedRedis:
    import docker.errors

    password = load_or_create_password(state_dir)
    spec = spec_digest(port=port, network=network, volume=volume)
    container = get_container(client, name)
    if container is not None and not owned(container):
        raise refuse_foreign("container", name)

    try:
        image_obj = client.images.get(image)
    except docker.errors.ImageNotFound:
        image_obj = None  # fine while an existing container can be reused; fatal when one must be created

    action = "reused"
    if container is not None:
        labels = (container.attrs.get("Config") or {}).get("Labels") or {}
        running = container.status == "running"
        stale = labels.get(LABEL_SPEC) != spec or labels.get(LABEL_AUTH) != digest(password)
        if not running and image_obj is not None and container.attrs.get("Image") != image_obj.id:
            stale = True
        if not running and labels.get(LABEL_MAXMEMORY) != str(maxmemory):
            stale = True  # a running one keeps its limit until it is re-created (`cronium doctor` says so)
        if not stale and not running:
            net = ensure_network(client, network)
            if not attached_to(container, net):
                stale = True  # the network was re-created since: re-create the container too
        if stale:
            if progress:
                progress("redis", f"re-creating {name} (its settings changed; the data volume is kept)")
            if running:
                container.stop(timeout=10)
            remove_container(container)
            container = None
        elif not running:
            if progress:
                progress("redis", f"starting {name}")
            start_container(container, port=port, name=name)
            action = "started"
    if container is None:
        if image_obj is None:
            raise ImageMissing(image, "redis")
        try:
            container = create_container(client, image=image, name=name, network=network, volume=volume, port=port,
                                         password=password, maxmemory=maxmemory, progress=progress)
        except NameTaken:
            # created concurrently by another cronium process: use that one once it runs
            container = get_container(client, name)
            if container is None or not owned(container):
                raise refuse_foreign("container", name) from None
            deadline = time.monotonic() + 5
            while container.status == "created" and time.monotonic() < deadline:
                time.sleep(0.05)
                container.reload()
            if container.status != "running":
                start_container(container, port=port, name=name)
            action = "reused"
        else:
            try:
                start_container(container, port=port, name=name)
            except ServiceError:
                remove_container(container)
                raise
            action = "created"

    _wait_for_ping(container, port=port, password=password, timeout=timeout, name=name)
    container.reload()
    return ManagedRedis(name=name, container_id=container.id, host="127.0.0.1", port=port, network=network,
                        network_host=name, network_port=REDIS_PORT, action=action, password=password)


def find_redis(client, *, name: str = DEFAULT_NAME, network: str = DEFAULT_NETWORK, port: int = DEFAULT_PORT,
               state_dir: os.PathLike | str) -> ManagedRedis:
    """How to reach the managed Redis when it already runs — starting, creating or re-creating
    nothing (for read-only commands). `StoreUnavailable` with the fix when it does not run."""
    fix = "start it with `cronium services start` (or any command that runs a job)"
    path = password_path(state_dir)
    container = get_container(client, name)
    if container is None or not owned(container) or container.status != "running" or not path.is_file():
        state = "missing" if container is None else ("not cronium's" if not owned(container) else container.status)
        if container is not None and container.status == "running" and not path.is_file():
            state = f"running, but its password file {path} is missing"
        raise StoreUnavailable(f"the managed Redis '{name}' is not running ({state}); a read-only command "
                               "does not start it", hint=fix)
    return ManagedRedis(name=name, container_id=container.id, host="127.0.0.1", port=port, network=network,
                        network_host=name, network_port=REDIS_PORT, action="reused",
                        password=path.read_text().strip())


def _wait_for_ping(container, *, port: int, password: str, timeout: float, name: str) -> None:
    from ...store.probe import OK, PASSWORD_REFUSED, PASSWORD_REJECTED, ServerProbe

    deadline = time.monotonic() + timeout
    delay = 0.01
    next_check = time.monotonic() + 0.5
    last = "no answer"
    probe = ServerProbe("127.0.0.1", port, password)
    try:
        while True:
            answer = probe.ping()
            if answer == OK:
                return
            if answer == PASSWORD_REJECTED:
                raise ServiceError(f"the managed Redis '{name}' on 127.0.0.1:{port} refused the stored password",
                                   hint="stop it (`cronium services stop`) so it is re-created with the stored password")
            if answer == PASSWORD_REFUSED:
                raise ServiceError(f"the managed Redis '{name}' on 127.0.0.1:{port} refused the stored password")
            last = answer
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.5
                container.reload()
                if container.status not in ("running", "restarting", "created"):
                    tail = container.logs(tail=15).decode(errors="replace").replace(password, "***")
                    raise ServiceError(f"the managed Redis '{name}' stopped while starting (state "
                                       f"{container.status}); its last log lines:\n{tail}")
            if now >= deadline:
                raise StoreUnavailable(f"the managed Redis '{name}' did not answer PING on 127.0.0.1:{port} "
                                       f"within {timeout:g}s ({last})",
                                       hint=f"see `docker logs {name}`")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
    finally:
        probe.close()


def redis_status(client, *, name: str = DEFAULT_NAME, state_dir: os.PathLike | str | None = None) -> RedisStatus:
    """What the managed Redis container is doing; with `state_dir`, also whether it answers PING."""
    container = get_container(client, name)
    if container is None:
        return RedisStatus(name=name, exists=False)
    attrs = container.attrs
    running = container.status == "running"
    host_port = None
    bindings = ((attrs.get("HostConfig") or {}).get("PortBindings") or {}).get(f"{REDIS_PORT}/tcp") or []
    if bindings and str(bindings[0].get("HostPort") or "").isdigit():
        host_port = int(bindings[0]["HostPort"])
    volume = next((m.get("Name") for m in attrs.get("Mounts") or [] if m.get("Destination") == "/data"), None)
    healthy = None
    ours = owned(container)
    if ours and running and state_dir is not None and host_port and password_path(state_dir).is_file():
        from ...store.probe import OK, ServerProbe

        probe = ServerProbe("127.0.0.1", host_port, password_path(state_dir).read_text().strip())
        try:
            healthy = probe.ping() == OK
        except Exception:
            healthy = False
        finally:
            probe.close()
    return RedisStatus(
        name=name, exists=True, running=running, state=container.status, container_id=container.id,
        image=attrs.get("Image"), host_port=host_port,
        networks=tuple(sorted(((attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        volume=volume, healthy=healthy, managed=ours,
    )


def stop_redis(client, *, name: str = DEFAULT_NAME, timeout: int = 10) -> bool:
    """Stop the managed Redis (the container and its data volume are kept). True if it was running."""
    container = get_container(client, name)
    if container is None:
        return False
    if not owned(container):
        raise refuse_foreign("container", name)
    if container.status != "running":
        return False
    container.stop(timeout=timeout)
    return True


def remove_redis(client, *, name: str = DEFAULT_NAME, volume: str | None = None, network: str | None = None) -> None:
    """Remove the managed Redis container; with `volume`, also its data volume (the data is lost); with
    `network`, also the services network if no container is attached to it any more. Only objects
    carrying cronium's service labels are removed."""
    container = get_container(client, name)
    if container is not None:
        if not owned(container):
            raise refuse_foreign("container", name)
        remove_container(container)
    vol = find(client.volumes, volume) if volume else None
    if vol is not None:
        if service_label(vol) != "redis-data":
            raise refuse_foreign("volume", volume)
        vol.remove()
    net = find(client.networks, network) if network else None
    if net is not None:
        if service_label(net) != "network":
            raise refuse_foreign("network", network)
        net.reload()
        if not net.attrs.get("Containers"):
            net.remove()

