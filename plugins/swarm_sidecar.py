"""Built-in plugin `swarm_sidecar`: the runtime-API sidecar of each execution, as a swarm service.

`cronium-runtime-<execution>` is a service of one task (endpoint mode `dnsrr`: this kernel and
many others have no IPVS for virtual IPs) from the sidecar image, on the job's overlay network with
the alias `runtime-api` and on `swarm.services_network`, an attachable overlay the Redis container
is connected to (with the host name of the sidecars' Redis URL as its alias). Its settings — the
token's verify key and the Redis URL with a per-execution ACL user, exactly as on the Docker
executor — are a Swarm secret (encrypted in the swarm's store, mounted on a tmpfs, readable by
the sidecar's user only) created for this attempt and removed at cleanup: no service spec, env or
label holds them. Readiness is the sidecar's ready line, read from its task's log through the manager (any node). Placement:
`swarm.placement` and the job's constraints; the job is then pinned to the sidecar's node.
`reap_orphans` removes orphaned sidecar services and settings secrets anywhere in the swarm.
"""
from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from cronium.core import hookimpl
from cronium.core.errors import PhaseError
from cronium.core.model import SidecarInfo
from cronium.plugins import _swarm, _swarm_tasks
from cronium.plugins.sidecar import ALIAS, NAME_PREFIX, PORT, create_acl_user, ready_event, sidecar_settings

#: This plugin belongs to the swarm executor: it takes part only in runs with executor = "swarm".
EXECUTOR = "swarm"
ROLE = "swarm-sidecar"
SETTINGS_FILE = "cronium-sidecar-settings.json"


@hookimpl(trylast=True)
def launch_sidecar(execution, network, token, options, runtime, resources):
    client, cfg = runtime.docker, runtime.config
    _swarm.manager_node(client, "sidecar")
    services_network = ensure_services_network(runtime)
    redis_url = (create_acl_user(runtime, execution, resources) if cfg["redis.sidecar_auth"] == "acl"
                 else runtime.sidecar_redis_url)
    settings = json.dumps(sidecar_settings(execution, token, redis_url, cfg, network)).encode()
    labels = {**options.labels, **execution.labels, "cronium.role": ROLE}
    secret_name = f"cronium-settings-{execution.execution_id}-{execution.attempt_tag}"
    resources.add("swarm-secret", secret_name, lambda: _swarm.remove_owned(client, "secret", secret_name, labels))
    secret_id = _swarm.create_secret(client, secret_name, settings, labels)
    image = _swarm.image_name(cfg, cfg["images.sidecar"])
    command = ["python3", "-m", "cronium.sidecar", "--settings", f"{_swarm.SECRETS_DIR}/{SETTINGS_FILE}"]
    container, limits = _swarm.container_spec(
        image, command, options, env=dict(options.env), labels=labels, role="sidecar", init=False,
        secrets=[_swarm.secret_ref(secret_id, secret_name, SETTINGS_FILE, options.user)])
    name = f"{NAME_PREFIX}{execution.execution_id}"
    spec = _swarm.service_spec(name, labels=labels, container=container, resources=limits,
                               networks=[{"Target": network.id, "Aliases": [ALIAS]}, {"Target": services_network}],
                               constraints=_swarm.constraints(runtime, execution), stop_grace=cfg["limits.stop_grace"])
    resources.add("swarm-service", name, lambda: _swarm.remove_owned(client, "service", name, labels))
    started = time.monotonic()
    service_id = _swarm.create_service(client, spec, "sidecar")
    task = _swarm_tasks.wait_for_task(client, service_id, cfg["swarm.task_timeout"], "sidecar")
    container_id = _swarm_tasks.task_container(task)
    ready, output = wait_ready(client, task["ID"], cfg["sidecar.ready_timeout"])
    if not ready:
        tail = output.decode("utf-8", "replace").strip()[-800:] or "(no output)"
        raise PhaseError("sidecar", f"the sidecar did not become ready within {cfg['sidecar.ready_timeout']}s; "
                                    f"its output: {tail}",
                         hint="check `cronium doctor` and that Redis is on swarm.services_network")
    return SidecarInfo(container_id=container_id, name=name, image=image, alias=ALIAS, url=f"http://{ALIAS}:{PORT}",
                       probe_url=None, ready_seconds=time.monotonic() - started)


def wait_ready(client, task_id: str, timeout: float) -> tuple[bool, bytes]:
    """Read the sidecar task's output (on any node) until its ready line; (ready, output seen)."""
    seen = b""
    for _, data in _swarm_tasks.task_logs(client, task_id, follow=True, timeout=timeout):
        if data is None:
            continue
        seen = (seen + data)[-65536:]
        if ready_event(seen) is not None:
            return True, seen
    return False, seen


def ensure_services_network(runtime) -> str:
    """The id of `swarm.services_network` (an attachable, internal overlay; created when missing),
    with the Redis container connected to it under the host name of the sidecars' Redis URL."""
    from docker.errors import APIError, NotFound

    client, cfg = runtime.docker, runtime.config
    name = cfg["swarm.services_network"]
    with runtime.gate("swarm-services-network", 1):
        found = _swarm.lookup(client, "network", name)
        if found is None:
            try:
                _swarm.create_overlay(client, name, subnet=None, labels={"cronium.role": "swarm-services"},
                                      internal=True, encrypted=cfg["swarm.encrypted"])
            except APIError as exc:
                if "already exists" not in str(exc):
                    raise PhaseError("sidecar", f"could not create the swarm services network {name}: "
                                                f"{exc.explanation or exc}") from None
            found = _swarm.lookup(client, "network", name)
        redis = cfg["swarm.redis_container"] or (cfg["services.redis_container"] if cfg.redis_managed else "")
        if redis:
            alias = urlsplit(runtime.sidecar_redis_url).hostname
            try:
                attached = client.api.inspect_container(redis)["NetworkSettings"]["Networks"]
                if name not in attached:
                    client.api.connect_container_to_network(redis, name, aliases=[alias] if alias else None)
            except (NotFound, APIError) as exc:
                raise PhaseError("sidecar", f"could not connect the Redis container '{redis}' to {name}: "
                                            f"{getattr(exc, 'explanation', None) or exc}",
                                 hint="start Redis (`cronium services start`) or set swarm.redis_container") from None
    return found[0]


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Orphaned sidecar services and their settings secrets."""
    _swarm.reap(runtime.docker, "service", ROLE, judge, dry_run, report)
    _swarm.reap(runtime.docker, "secret", ROLE, judge, dry_run, report)
