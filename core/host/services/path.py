"""The sidecars' path to the managed Redis: probe it the way a new sidecar uses it, and heal it.

Sidecars reach the managed Redis by its container name on the services network, through the
engine's embedded DNS. Docker 20.10 can lose that name for *new* containers while the Redis
container itself runs and answers on 127.0.0.1 (seen after `docker swarm init` + `docker swarm
leave`): every helper call of every job then fails with 503. A PING over the published port does
not see it, so:

- `probe_sidecar_path` starts one short-lived container on the services network (from the local
  Redis image, no capabilities, read-only, nobody) that resolves the name and connects to the port;
  it changes nothing else (read-only: `cronium doctor`);
- `heal_sidecar_path` disconnects and reconnects the Redis container on that network (which
  re-registers its name), then probes again; only a container carrying cronium's service label is
  touched.
"""
from __future__ import annotations

from dataclasses import dataclass

from .objects import REDIS_PORT, ServiceError, get_container, owned, refuse_foreign

#: Label of the probe container (never `cronium.managed`: it is removed by whoever started it).
PROBE_LABEL = "cronium.service"
PROBE_ROLE = "path-probe"
#: Exit codes of the probe script.
UNRESOLVED, UNREACHABLE = 3, 4
#: Seconds each step inside the probe may take (an unresolvable name otherwise takes ~40 s).
STEP_SECONDS = 3

_SCRIPT = (
    'timeout {t} getent hosts "$0" >/dev/null || exit {unresolved}; '
    'out=$(timeout {t} redis-cli -h "$0" -p "$1" PING 2>&1); '
    'case "$out" in *PONG*|*NOAUTH*|*"invalid username-password"*) exit 0;; esac; '
    'echo "$out"; exit {unreachable}'
).format(t=STEP_SECONDS, unresolved=UNRESOLVED, unreachable=UNREACHABLE)


@dataclass(frozen=True)
class PathProbe:
    ok: bool
    detail: str


def probe_sidecar_path(client, *, image: str, name: str, network: str) -> PathProbe:
    """Whether a new container on `network` resolves `name` and connects to its Redis port."""
    import docker.errors

    try:
        container = client.containers.create(
            image, entrypoint=["sh", "-c", _SCRIPT], command=[name, str(REDIS_PORT)], network=network,
            user="65534:65534", cap_drop=["ALL"], read_only=True, security_opt=["no-new-privileges"],
            mem_limit="32m", pids_limit=32, labels={PROBE_LABEL: PROBE_ROLE}, log_config={"type": "json-file"},
        )
    except docker.errors.ImageNotFound:
        return PathProbe(False, f"cannot probe: the image {image} is missing (`cronium images build redis`)")
    except docker.errors.APIError as exc:
        return PathProbe(False, f"cannot start a probe container on {network}: {exc.explanation or exc}")
    try:
        container.start()
        code = container.wait(timeout=4 * STEP_SECONDS).get("StatusCode")
        output = container.logs().decode(errors="replace").strip()
    except Exception as exc:  # the engine or the wait failed: the path is not proven
        return PathProbe(False, f"the probe container on {network} did not finish: {exc}")
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass
    where = f"{name}:{REDIS_PORT} from a new container on {network}"
    if code == 0:
        return PathProbe(True, f"{where}: resolves and connects")
    if code == UNRESOLVED:
        return PathProbe(False, f"{where}: the name does not resolve (the engine's DNS lost it)")
    return PathProbe(False, f"{where}: does not connect (exit {code}{': ' + output[-200:] if output else ''})")


def heal_hint(name: str, network: str) -> str:
    return (f"run `cronium services start` (it reconnects {name} to {network}), or by hand: "
            f"`docker network disconnect {network} {name} && docker network connect {network} {name}`")


def heal_sidecar_path(client, *, image: str, name: str, network: str, progress=None) -> PathProbe:
    """Probe the path; when it fails, reconnect the Redis container to the network and probe again.
    Returns the last probe; `ServiceError` when the container is not cronium's or reconnecting fails."""
    import docker.errors

    first = probe_sidecar_path(client, image=image, name=name, network=network)
    if first.ok:
        return first
    container = get_container(client, name)
    if container is None or container.status != "running":
        return first  # nothing to reconnect: ensure_redis starts or creates it
    if not owned(container):
        raise refuse_foreign("container", name)
    if progress:
        progress("redis", f"the sidecars' path failed ({first.detail}); reconnecting {name} to {network}")
    attached = ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
    try:
        net = client.networks.get(attached.get("NetworkID") or network)
        if attached:
            net.disconnect(container, force=True)
        net.connect(container)
    except docker.errors.APIError as exc:
        raise ServiceError(f"could not reconnect {name} to {network}: {exc.explanation or exc}",
                           hint=heal_hint(name, network)) from None
    return probe_sidecar_path(client, image=image, name=name, network=network)


def ensure_sidecar_path(client, cfg, *, progress=None) -> PathProbe | None:
    """Heal the managed Redis' path for sidecars (see `heal_sidecar_path`) with the settings of
    `cfg`; None when there is nothing to check (an external Redis, or `redis.sidecar_url` set).
    `ServiceError` naming the fix when the path still fails after reconnecting."""
    if not cfg.redis_managed or cfg["redis.sidecar_url"]:
        return None
    name, network = cfg["services.redis_container"], cfg["services.network"]
    result = heal_sidecar_path(client, image=cfg["images.redis"], name=name, network=network, progress=progress)
    if not result.ok:
        raise ServiceError(f"sidecars cannot reach the managed Redis: {result.detail}",
                           hint=f"check `docker network inspect {network}`; if it persists, restart dockerd")
    return result
