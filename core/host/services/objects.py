"""The Docker objects of the managed Redis: its container (with the config file copied in before the
first start), the internal services network and the data volume. Only objects carrying cronium's
service labels are ever used, started or removed; a foreign one with the same name is refused."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from typing import Callable

from ...errors import CroniumError

LABEL_SERVICE = "cronium.service"
LABEL_SPEC = "cronium.service.spec"
LABEL_AUTH = "cronium.service.auth"
#: The `maxmemory` (bytes) the container was created with.
LABEL_MAXMEMORY = "cronium.service.maxmemory"

REDIS_PORT = 6379  # inside the container / on the services network
REDIS_UID = 999  # the redis user of images/redis/Dockerfile
CONFIG_DIR = "/etc/redis"
CONFIG_NAME = "cronium.conf"

Progress = Callable[[str, str], None]


class ServiceError(CroniumError):
    """The managed Redis could not be created, started or reached."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def find(collection, name: str):
    """The container, network or volume `name` in the SDK `collection` (e.g. `client.volumes`), or None."""
    import docker.errors

    try:
        return collection.get(name)
    except docker.errors.NotFound:
        return None


def get_container(client, name: str):
    return find(client.containers, name)


def service_label(obj) -> str | None:
    """What cronium made a network or volume for (its `cronium.service` label), or None."""
    return (obj.attrs.get("Labels") or {}).get(LABEL_SERVICE)


def owned(container) -> bool:
    labels = (container.attrs.get("Config") or {}).get("Labels") or {}
    return labels.get(LABEL_SERVICE) == "redis"


def refuse_foreign(kind: str, name: str) -> ServiceError:
    return ServiceError(f"a {kind} named '{name}' exists but was not created by cronium; it is left alone",
                        hint=f"remove or rename that {kind}, or configure another {kind} name for the managed Redis")


def _networks_named(client, name: str) -> list:
    # the engine's name filter matches substrings; names are not unique either
    return [n for n in client.networks.list(names=[name]) if n.name == name]


def ensure_network(client, name: str):
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
    if service_label(winner) != "network":
        raise refuse_foreign("network", name)
    for extra in nets[1:]:
        if service_label(extra) != "network":
            continue
        try:
            extra.reload()
            if not extra.attrs.get("Containers"):
                extra.remove()
        except docker.errors.APIError:
            pass
    winner.reload()
    return winner


def ensure_volume(client, name: str):
    volume = find(client.volumes, name)
    if volume is None:
        return client.volumes.create(name, labels={LABEL_SERVICE: "redis-data"})
    if service_label(volume) != "redis-data":
        raise refuse_foreign("volume", name)
    return volume


def spec_digest(*, port: int, network: str, volume: str) -> str:
    return digest(json.dumps({"port": port, "network": network, "volume": volume, "v": 1}, sort_keys=True))


def _config_text(password: str, maxmemory: int) -> str:
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
        # Full is a clear error (OOM -> StoreFull), never records or queue entries evicted.
        f"maxmemory {maxmemory}",
        "maxmemory-policy noeviction",
        "",
    ])


def _config_tar(password: str, maxmemory: int) -> bytes:
    data = _config_text(password, maxmemory).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(CONFIG_NAME)
        info.size = len(data)
        info.mode = 0o600
        info.uid = info.gid = REDIS_UID
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class NameTaken(Exception):
    pass


def create_container(client, *, image, name, network, volume, port, password, maxmemory: int,
                     progress: Progress | None):
    import docker.errors

    net = ensure_network(client, network)
    ensure_volume(client, volume)
    if progress:
        progress("redis", f"creating container {name} from {image}")
    try:
        container = client.containers.create(
            image,
            command=[f"{CONFIG_DIR}/{CONFIG_NAME}"],
            name=name,
            detach=True,
            labels={LABEL_SERVICE: "redis",
                    LABEL_SPEC: spec_digest(port=port, network=network, volume=volume),
                    LABEL_AUTH: digest(password), LABEL_MAXMEMORY: str(maxmemory)},
            ports={f"{REDIS_PORT}/tcp": ("127.0.0.1", port)},
            volumes={volume: {"bind": "/data", "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
        )
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise NameTaken() from None  # another cronium process created it just now
        raise ServiceError(f"could not create the Redis container '{name}': {exc.explanation or exc}") from None
    try:
        if not container.put_archive(CONFIG_DIR, _config_tar(password, maxmemory)):
            raise ServiceError(f"could not write the Redis config into '{name}'")
        net.connect(container)
    except BaseException:
        container.remove(force=True, v=True)
        raise
    return container


def start_container(container, *, port: int, name: str) -> None:
    import docker.errors

    try:
        container.start()
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        if "address already in use" in text or "port is already allocated" in text:
            raise ServiceError(f"could not start the managed Redis '{name}': 127.0.0.1:{port} is already in use",
                               hint="stop what listens there, or configure another port for the managed Redis") from None
        raise ServiceError(f"could not start the managed Redis '{name}': {text}") from None


def remove_container(container) -> None:
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


def attached_to(container, network) -> bool:
    nets = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    entry = nets.get(network.name)
    return bool(entry) and entry.get("NetworkID") == network.id
