"""The managed Redis ("embedded default"): one Redis container cronium starts when no external Redis
is configured.

- container ``cronium-redis`` (name configurable) from the local ``cronium/redis`` image, labelled
  ``cronium.service=redis`` (never ``cronium.managed``: the reaper must not delete it);
- data in a named volume (``cronium-redis-data``) at ``/data`` with AOF persistence;
- ``requirepass`` with a password generated once and kept 0600 in the caller's state dir; the
  password reaches the container as a config file copied in before the first start, so it is in no
  command line, environment variable or ``docker inspect`` output;
- published only on ``127.0.0.1:<port>`` (default 6390) for the orchestrator on the host;
- attached to the internal network ``cronium-services`` so that sidecars on that network reach it as
  ``redis://cronium-redis:6379`` while that network has no route out;
- restart policy ``unless-stopped``.

Only objects carrying cronium's service labels are ever started, stopped or removed here.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import secrets
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from ..errors import CroniumError, ImageMissing, StoreUnavailable

DEFAULT_IMAGE = "cronium/redis:latest"
DEFAULT_NAME = "cronium-redis"
DEFAULT_NETWORK = "cronium-services"
DEFAULT_VOLUME = "cronium-redis-data"
DEFAULT_PORT = 6390
PASSWORD_FILE = "redis-password"

LABEL_SERVICE = "cronium.service"
LABEL_SPEC = "cronium.service.spec"
LABEL_AUTH = "cronium.service.auth"

REDIS_PORT = 6379  # inside the container / on the services network
REDIS_UID = 999  # the redis user of images/redis/Dockerfile
CONFIG_DIR = "/etc/redis"
CONFIG_NAME = "cronium.conf"

Progress = Callable[[str, str], None]


class ServiceError(CroniumError):
    """The managed Redis could not be created, started or reached."""


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


# --- the password ----------------------------------------------------------------------------

def password_path(state_dir: os.PathLike | str) -> Path:
    return Path(state_dir) / PASSWORD_FILE


def load_or_create_password(state_dir: os.PathLike | str) -> str:
    """The managed Redis password: created once (0600, in a 0700 state dir), then reused."""
    path = password_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if (path.stat().st_mode & 0o777) != 0o600:
            os.chmod(path, 0o600)
        password = path.read_text().strip()
        if len(password) < 16:
            raise ServiceError(f"the managed Redis password file {path} is empty or too short",
                               hint="delete it: a new password is generated and the container re-created "
                                    "(the data volume is kept)")
        return password
    password = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- docker objects --------------------------------------------------------------------------

def _get_container(client, name: str):
    import docker.errors

    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def _owned(container) -> bool:
    labels = (container.attrs.get("Config") or {}).get("Labels") or {}
    return labels.get(LABEL_SERVICE) == "redis"


def _refuse_foreign(kind: str, name: str) -> ServiceError:
    return ServiceError(f"a {kind} named '{name}' exists but was not created by cronium; it is left alone",
                        hint=f"remove or rename that {kind}, or configure another {kind} name for the managed Redis")


def _networks_named(client, name: str) -> list:
    # the engine's name filter matches substrings; names are not unique either
    return [n for n in client.networks.list(names=[name]) if n.name == name]


def _ensure_network(client, name: str):
    """The services network (internal, labelled), created when missing. Docker does not keep network
    names unique: when concurrent creates made several, every caller settles on the oldest and the
    extra ones are removed."""
    import docker.errors

    nets = _networks_named(client, name)
    if not nets:
        try:
            client.networks.create(name, driver="bridge", internal=True, labels={LABEL_SERVICE: "network"})
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise ServiceError(f"could not create the network '{name}': {exc.explanation or exc}") from None
        nets = _networks_named(client, name)
        if not nets:
            raise ServiceError(f"the network '{name}' disappeared right after it was created")
    nets.sort(key=lambda n: (n.attrs.get("Created") or "", n.id))
    winner = nets[0]
    if (winner.attrs.get("Labels") or {}).get(LABEL_SERVICE) != "network":
        raise _refuse_foreign("network", name)
    for extra in nets[1:]:
        if (extra.attrs.get("Labels") or {}).get(LABEL_SERVICE) != "network":
            continue
        try:
            extra.reload()
            if not extra.attrs.get("Containers"):
                extra.remove()
        except docker.errors.APIError:
            pass
    winner.reload()
    return winner


def _ensure_volume(client, name: str):
    import docker.errors

    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        return client.volumes.create(name, labels={LABEL_SERVICE: "redis-data"})
    if (volume.attrs.get("Labels") or {}).get(LABEL_SERVICE) != "redis-data":
        raise _refuse_foreign("volume", name)
    return volume


def _spec_digest(*, port: int, network: str, volume: str) -> str:
    return _digest(json.dumps({"port": port, "network": network, "volume": volume, "v": 1}, sort_keys=True))


def _config_text(password: str) -> str:
    return "\n".join([
        "# written by cronium (managed Redis); the password is also in the owner's state dir",
        "bind 0.0.0.0",
        f"port {REDIS_PORT}",
        "protected-mode yes",
        "dir /data",
        "appendonly yes",
        "appendfsync everysec",
        'logfile ""',
        "daemonize no",
        f"requirepass {password}",
        "",
    ])


def _config_tar(password: str) -> bytes:
    data = _config_text(password).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(CONFIG_NAME)
        info.size = len(data)
        info.mode = 0o600
        info.uid = info.gid = REDIS_UID
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _NameTaken(Exception):
    pass


def _create(client, *, image, name, network, volume, port, password, progress: Progress | None):
    import docker.errors

    net = _ensure_network(client, network)
    _ensure_volume(client, volume)
    if progress:
        progress("redis", f"creating container {name} from {image}")
    try:
        container = client.containers.create(
            image,
            command=[f"{CONFIG_DIR}/{CONFIG_NAME}"],
            name=name,
            detach=True,
            labels={LABEL_SERVICE: "redis",
                    LABEL_SPEC: _spec_digest(port=port, network=network, volume=volume),
                    LABEL_AUTH: _digest(password)},
            ports={f"{REDIS_PORT}/tcp": ("127.0.0.1", port)},
            volumes={volume: {"bind": "/data", "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
        )
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise _NameTaken() from None  # another cronium process created it just now
        raise ServiceError(f"could not create the Redis container '{name}': {exc.explanation or exc}") from None
    try:
        if not container.put_archive(CONFIG_DIR, _config_tar(password)):
            raise ServiceError(f"could not write the Redis config into '{name}'")
        net.connect(container)
    except BaseException:
        container.remove(force=True, v=True)
        raise
    return container


def _start(container, *, port: int, name: str) -> None:
    import docker.errors

    try:
        container.start()
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        if "address already in use" in text or "port is already allocated" in text:
            raise ServiceError(f"could not start the managed Redis '{name}': 127.0.0.1:{port} is already in use",
                               hint="stop what listens there, or configure another port for the managed Redis") from None
        raise ServiceError(f"could not start the managed Redis '{name}': {text}") from None


def _remove_container(container) -> None:
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


def _attached_to(container, network) -> bool:
    nets = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    entry = nets.get(network.name)
    return bool(entry) and entry.get("NetworkID") == network.id


# --- the public API --------------------------------------------------------------------------

def ensure_redis(client, *, image: str = DEFAULT_IMAGE, name: str = DEFAULT_NAME, network: str = DEFAULT_NETWORK,
                 volume: str = DEFAULT_VOLUME, port: int = DEFAULT_PORT, state_dir: os.PathLike | str,
                 timeout: float = 30.0, progress: Progress | None = None) -> ManagedRedis:
    """Make sure the managed Redis runs and answers PING; return how to reach it.

    Idempotent: a running container is reused as it is (even when its image was rebuilt since, so
    that jobs using it are not disturbed); a stopped one is started; a missing one is created.
    A container whose password, port, network or volume no longer match is re-created (the data
    volume is kept); so is a stopped one whose image was rebuilt.
    """
    with _state_lock(state_dir, name):
        return _ensure_redis_locked(client, image=image, name=name, network=network, volume=volume, port=port,
                                    state_dir=state_dir, timeout=timeout, progress=progress)


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


def _ensure_redis_locked(client, *, image, name, network, volume, port, state_dir, timeout, progress) -> ManagedRedis:
    import docker.errors

    password = load_or_create_password(state_dir)
    spec = _spec_digest(port=port, network=network, volume=volume)
    container = _get_container(client, name)
    if container is not None and not _owned(container):
        raise _refuse_foreign("container", name)

    try:
        image_obj = client.images.get(image)
    except docker.errors.ImageNotFound:
        image_obj = None  # fine while an existing container can be reused; fatal when one must be created

    action = "reused"
    if container is not None:
        labels = (container.attrs.get("Config") or {}).get("Labels") or {}
        running = container.status == "running"
        stale = labels.get(LABEL_SPEC) != spec or labels.get(LABEL_AUTH) != _digest(password)
        if not running and image_obj is not None and container.attrs.get("Image") != image_obj.id:
            stale = True
        if not stale and not running:
            net = _ensure_network(client, network)
            if not _attached_to(container, net):
                stale = True  # the network was re-created since: re-create the container too
        if stale:
            if progress:
                progress("redis", f"re-creating {name} (its settings changed; the data volume is kept)")
            if running:
                container.stop(timeout=10)
            _remove_container(container)
            container = None
        elif not running:
            if progress:
                progress("redis", f"starting {name}")
            _start(container, port=port, name=name)
            action = "started"
    if container is None:
        if image_obj is None:
            raise ImageMissing(image, "redis")
        try:
            container = _create(client, image=image, name=name, network=network, volume=volume, port=port,
                                password=password, progress=progress)
        except _NameTaken:
            # created concurrently by another cronium process: use that one once it runs
            container = _get_container(client, name)
            if container is None or not _owned(container):
                raise _refuse_foreign("container", name) from None
            deadline = time.monotonic() + 5
            while container.status == "created" and time.monotonic() < deadline:
                time.sleep(0.05)
                container.reload()
            if container.status != "running":
                _start(container, port=port, name=name)
            action = "reused"
        else:
            try:
                _start(container, port=port, name=name)
            except ServiceError:
                _remove_container(container)
                raise
            action = "created"

    _wait_for_ping(container, port=port, password=password, timeout=timeout, name=name)
    container.reload()
    return ManagedRedis(name=name, container_id=container.id, host="127.0.0.1", port=port, network=network,
                        network_host=name, network_port=REDIS_PORT, action=action, password=password)


def _wait_for_ping(container, *, port: int, password: str, timeout: float, name: str) -> None:
    from ..store.probe import OK, PASSWORD_REFUSED, PASSWORD_REJECTED, ServerProbe

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
    container = _get_container(client, name)
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
    owned = _owned(container)
    if owned and running and state_dir is not None and host_port and password_path(state_dir).is_file():
        from ..store.probe import OK, ServerProbe

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
        volume=volume, healthy=healthy, managed=owned,
    )


def stop_redis(client, *, name: str = DEFAULT_NAME, timeout: int = 10) -> bool:
    """Stop the managed Redis (the container and its data volume are kept). True if it was running."""
    container = _get_container(client, name)
    if container is None:
        return False
    if not _owned(container):
        raise _refuse_foreign("container", name)
    if container.status != "running":
        return False
    container.stop(timeout=timeout)
    return True


def remove_redis(client, *, name: str = DEFAULT_NAME, volume: str | None = None, network: str | None = None) -> None:
    """Remove the managed Redis container; with `volume`, also its data volume (the data is lost); with
    `network`, also the services network if no container is attached to it any more. Only objects
    carrying cronium's service labels are removed."""
    import docker.errors

    container = _get_container(client, name)
    if container is not None:
        if not _owned(container):
            raise _refuse_foreign("container", name)
        _remove_container(container)
    if volume:
        try:
            vol = client.volumes.get(volume)
        except docker.errors.NotFound:
            vol = None
        if vol is not None:
            if (vol.attrs.get("Labels") or {}).get(LABEL_SERVICE) != "redis-data":
                raise _refuse_foreign("volume", volume)
            vol.remove()
    if network:
        try:
            net = client.networks.get(network)
        except docker.errors.NotFound:
            net = None
        if net is not None:
            if (net.attrs.get("Labels") or {}).get(LABEL_SERVICE) != "network":
                raise _refuse_foreign("network", network)
            net.reload()
            if not net.attrs.get("Containers"):
                net.remove()


__all__ = [
    "DEFAULT_IMAGE", "DEFAULT_NAME", "DEFAULT_NETWORK", "DEFAULT_VOLUME", "DEFAULT_PORT", "ManagedRedis",
    "RedisStatus", "ServiceError", "ensure_redis", "redis_status", "stop_redis", "remove_redis",
    "load_or_create_password", "password_path",
]
