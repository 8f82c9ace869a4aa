"""Pooled slots: a job network, a booted sidecar on it and a started job container, made before any
execution exists and bound to one at claim (not a plugin itself; the `slots` plugin uses it).

A slot `cronium-slot-<hex>` is an internal job network of that name (a subnet of `network.pool`,
IPv6 off), a sidecar `<slot>-sidecar` on it with the alias `runtime-api` (and on the services
network), booted and blocked reading its settings on stdin as pooled sidecars are, and a job
container `<slot>-job` of the image the job that asked for the kind runs (the default of its type
or its own `--image`, pinned by the image's id), created with that job's options — its profile's
user, read-only root, tmpfs, seccomp, caps, … — and started: its prelude waits on stdin. None of
them holds anything of an execution: labels name the slot (`cronium.execution` = the slot's name,
`cronium.role=slot`, `cronium.slot=<kind>`, this process as `cronium.owner`), the job container's
environment is empty.

At claim (`claim`), in this order: the claim record `P pool:claims` slot name -> {execution, owner,
attempt, kind "slot"} (so the reaper and cleanup judge the slot's objects by their execution), the
removals registered, the containers renamed `cronium-runtime-<exec>` / `cronium-job-<exec>`, the
job's limits set by updating the container (memory + swap, CPUs, pids — skipped when the held
container was created with the very same ones; either way checked against what the engine then
holds), the sidecar's Redis ACL user and settings; at `release()` the job gets its
whole environment, its secrets and its script over stdin (the prelude exports them). A claimed
slot is never returned to the pool: it is removed with its execution, the claim record last.

The pool is `_sidecar_pool.SidecarPool` (bounded, sized from demand, drained on idle and on close),
with slots as its objects. Slots serve only what a held container can take (`refusal`).
"""
from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cronium.core.engine_objects import SLOT_PART, SLOT_ROLE
from cronium.core.errors import PhaseError, StoreUnavailable, UsageError
from cronium.core.executor import check_engine_warnings
from cronium.core.model import DeferredSecret, NetworkInfo, Secret, SidecarInfo
from cronium.core.script_launch import script_body
from cronium.plugins import _docker
from cronium.plugins._sidecar_pool import SidecarPool, deadline_label
from cronium.plugins.docker_executor import SECRET_PRELUDE, DockerJobHandle, job_host_config, secret_block
from cronium.plugins.network import check_engine_view, create_in_pool
from cronium.plugins.sidecar import (
    ALIAS,
    NAME_PREFIX,
    connect_sidecar,
    create_acl_user,
    create_sidecar_container,
    ready_info,
    sidecar_settings,
    wait_ready,
)
from docker.errors import APIError

SLOT_PREFIX = "cronium-slot-"
ROLE = SLOT_ROLE
#: HostConfig keys a claim sets on the held job container (`POST /containers/<id>/update`).
LIMIT_KEYS = ("Memory", "MemorySwap", "NanoCpus", "PidsLimit")
#: The slot's job container: the secret prelude, then the script's path (one line), then the
#: script job's own body (`script_body`: the helper files if delivered, then the script).
PATH_LINE = 'IFS= read -r _p || exit 1; set -- "$_p"; unset _p; '
SCRIPT_TYPES = ("python", "bash", "node")


@dataclass(frozen=True)
class SlotParts:
    """One idle slot: its name (= network name) and the engine's ids of its objects."""

    name: str
    network_id: str
    subnet: str
    sidecar_id: str
    job_id: str
    #: The limits (LIMIT_KEYS) the held job container was created with: a claim asking for the
    #: same ones needs no update call (an update runs `runc update` through the engine).
    limits: tuple = ()


@dataclass(frozen=True)
class SlotKind:
    """What the objects of a slot are created with: the options of the job that asked for it."""

    image: str
    #: The engine's id of `image` when the job asked: a re-tagged (rebuilt) image is another kind.
    image_id: str
    interpreter: str
    #: The script job's `/bin/sh -c` body (`script_body`), run after the prelude and the path line.
    body: str
    job_options: object
    sidecar_options: object
    services_network: str

    @property
    def key(self) -> str:
        """Everything a claim cannot change on the held objects: the image (by id), the command, and
        every option of both containers but the job's limits (`LIMIT_KEYS`, set at claim). Two
        profiles (or a per-profile option a plugin contributes) that differ anywhere else give two kinds."""
        job, side = self.job_options, self.sidecar_options
        text = json.dumps({"image": self.image, "image_id": self.image_id, "interpreter": self.interpreter,
                           "body": self.body,
                           "job": [{k: v for k, v in job.host_config.items() if k not in LIMIT_KEYS},
                                   job.user, job.working_dir, dict(job.labels)],
                           "sidecar": [side.host_config, side.user, dict(side.labels), dict(side.env)],
                           "services": self.services_network}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def job_command(self) -> list[str]:
        """The held job container's command (after its entrypoint `/bin/sh -c`)."""
        return [SECRET_PRELUDE + PATH_LINE + self.body, self.interpreter]


def refusal(execution, launch, cfg) -> str | None:
    """Why this execution cannot take a slot (None: it can). A held container was created before
    the execution with the job's image and options (its profile's included: they are in the kind's
    key), a shared uid and no egress; only its limits change at claim, and its env and secrets must
    fit on the prelude's lines. Egress networks are made per execution (`_egress`, with the
    execution's firewall rules), and a per-execution uid is claimed when the options are made."""
    if execution.job_type not in SCRIPT_TYPES:
        return "not a script job"
    if execution.egress:
        return "egress"
    if cfg["security.per_execution_uid"]:
        return "a uid of its own per execution"
    if "Mounts" in launch.options.host_config:
        return "mounts"
    command = tuple(launch.command)
    bodies = (script_body(execution.job_type, False), script_body(execution.job_type, True))
    if len(command) != 5 or command[:2] != ("/bin/sh", "-c") or command[2] not in bodies or "\n" in command[4]:
        return "a command other than the script's"
    if any("\n" in f"{k}{v}" or "\0" in f"{k}{v}" for k, v in launch.env.items()):
        return "an environment value with a newline"
    try:
        secret_block({k: v for k, v in launch.secret_env.items() if not isinstance(v, DeferredSecret)})
    except UsageError:
        return "a secret value with a newline"  # the normal path refuses it with the reason
    return None


def image_id(client, image: str) -> str | None:
    """The engine's id of `image`, or None when the engine does not hold it (or cannot say): then
    no slot is asked for, and the normal path gives its clear error about the image."""
    try:
        return client.api.inspect_image(image)["Id"]
    except Exception as exc:
        if isinstance(exc, APIError) or _docker.engine_unreachable(exc):
            return None  # the normal path says what is wrong (no such image, no engine)
        raise


def slot_kind(launch, image: str, sidecar_options, services_network: str) -> SlotKind:
    """The kind of slot for this launch; `image`: the engine's id of `launch.image` (`image_id`)."""
    return SlotKind(image=launch.image, image_id=image, interpreter=launch.command[3], body=launch.command[2],
                    job_options=launch.options, sidecar_options=sidecar_options, services_network=services_network)


def neutral_labels(runtime, name: str, kind: SlotKind) -> dict:
    """Labels that name no execution (bound at claim through the claim record); each part adds
    `cronium.slot.part` (`SLOT_PART`: network, sidecar or job)."""
    return {"cronium.managed": "true", "cronium.owner": runtime.owner, "cronium.role": ROLE,
            "cronium.execution": name, "cronium.deadline": deadline_label(runtime),
            "cronium.installation": runtime.installation, "cronium.slot": kind.key}


def open_pool(runtime) -> SidecarPool:
    cfg = runtime.config
    return SidecarPool(runtime, min_idle=cfg["sidecar.pool_size"], max_idle=cfg["pool.max_idle"],
                       demand_window=cfg["pool.demand_window"], idle_timeout=cfg["pool.idle_timeout"],
                       prefix=SLOT_PREFIX, remove=lambda slot: remove_slot(runtime.docker, slot),
                       leftovers=lambda: own_slot_names(runtime))


# --- making a slot (a pool thread) ---------------------------------------------------------------

def create_slot(runtime, name: str, kind: SlotKind) -> SlotParts:
    """Create and start one slot (on failure the pool removes what exists, by the slot's name)."""
    client = runtime.docker
    labels = neutral_labels(runtime, name, kind)
    network = _create_network(runtime, name, {**labels, SLOT_PART: "network"})
    side = kind.sidecar_options
    sidecar_id = create_sidecar_container(client, runtime.config["images.sidecar"], f"{name}-sidecar", side,
                                          {**side.labels, **labels, SLOT_PART: "sidecar"},
                                          _docker.host_config_kwargs(side.host_config), name, [ALIAS])
    connect_sidecar(client, sidecar_id, kind.services_network, None)
    client.api.start(sidecar_id)
    job_id = _create_job(runtime, name, kind, {**labels, SLOT_PART: "job"})
    client.api.start(job_id)
    return SlotParts(name=name, network_id=network.id, subnet=network.subnet, sidecar_id=sidecar_id, job_id=job_id,
                     limits=_limits(kind.job_options))


def _create_network(runtime, name: str, labels: dict) -> NetworkInfo:
    """An internal job network with no address on the host, as the `network` plugin makes them."""
    options = {"com.docker.network.bridge.enable_icc": "true", "com.docker.network.bridge.inhibit_ipv4": "true"}
    made = create_in_pool(runtime, name, internal=True, labels=labels, options=options)
    if made is None:
        raise PhaseError("network", f"no free subnet in {runtime.config['network.pool']} for a pooled slot")
    check_engine_view(runtime.docker, made[0], internal=True)
    return NetworkInfo(name=name, id=made[0], subnet=made[1], internal=True)


def _create_job(runtime, name: str, kind: SlotKind, labels: dict) -> str:
    client, cfg = runtime.docker, runtime.config
    options = kind.job_options
    host_config = job_host_config(client, cfg, name, options)
    created = client.api.create_container(
        kind.image, entrypoint=["/bin/sh", "-c"], command=kind.job_command, name=f"{name}-job",
        user=options.user, working_dir=options.working_dir, environment={}, stdin_open=True,
        labels={**options.labels, **labels}, host_config=host_config)
    check_engine_warnings(created.get("Warnings"), "job")
    if client.api.inspect_container(created["Id"])["Image"] != kind.image_id:  # re-tagged since the job asked
        raise PhaseError("job", f"image {kind.image} changed while a slot of it was made")
    return created["Id"]


def remove_slot(client, slot) -> None:
    """Remove an idle slot (its `SlotParts`, or the name of one whose creation failed)."""
    name = slot.name if isinstance(slot, SlotParts) else slot
    for ident in ((slot.job_id, slot.sidecar_id) if isinstance(slot, SlotParts) else (f"{name}-job", f"{name}-sidecar")):
        _docker.remove(client, "container", ident, wait=30)
    _docker.remove(client, "network", slot.network_id if isinstance(slot, SlotParts) else name, wait=30)


def own_slot_names(runtime) -> list[str]:
    """Names of this process's unclaimed slots still on the engine (claimed ones were renamed)."""
    found = _docker.labelled(runtime.docker, "network", "cronium.managed=true", f"cronium.role={ROLE}",
                             f"cronium.owner={runtime.owner}")
    return [n["Name"] for n in found if n["Name"].startswith(SLOT_PREFIX)]


# --- claiming a slot -----------------------------------------------------------------------------

class SlotJobHandle(DockerJobHandle):
    """The job of a slot: its container already runs (the prelude waits on stdin)."""

    def start(self) -> None:
        pass


def claim(runtime, slot: SlotParts, execution, token, launch, resources):
    """Bind an idle slot to `execution` (see the module docstring). Returns (network, sidecar,
    handle), or None when the slot cannot be used after all (removed now; the normal path runs)."""
    client, claims = runtime.docker, runtime.store.pool_claims
    try:
        claims.claim(slot.name, execution=execution.execution_id, owner=runtime.owner,
                     attempt=execution.attempt_tag, kind="slot")
    except StoreUnavailable:
        remove_slot(client, slot)
        return None
    # The claim record goes last: until then the reaper judges these objects as this execution's.
    resources.add("pool-claim", slot.name, lambda: claims.release(slot.name))
    resources.add("network", slot.name, lambda: _docker.remove(client, "network", slot.network_id))
    sidecar_name = f"{NAME_PREFIX}{execution.execution_id}"
    resources.add("container", sidecar_name, lambda: _docker.remove(client, "container", slot.sidecar_id))
    resources.add("container", launch.name, lambda: _docker.remove(client, "container", slot.job_id))
    network = NetworkInfo(name=slot.name, id=slot.network_id, subnet=slot.subnet, internal=True)
    # The job container's part (rename, limits, attach) runs while the sidecar takes its settings.
    binder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cronium-slot")
    job = binder.submit(_bind_job, client, slot, launch)
    try:
        sidecar = _bind_sidecar(runtime, slot, sidecar_name, execution, token, network, resources)
        raw = job.result()
    except (PhaseError, APIError, StoreUnavailable):
        # Died while idle, or a limit the engine would not take: not this slot — the normal path.
        if job.exception() is None:
            _docker.close(job.result())
        remove_slot(client, slot)
        return None
    finally:
        binder.shutdown(wait=False)
    env = {**{k: Secret(v) for k, v in launch.env.items()}, **launch.secret_env}
    path = launch.command[4].encode() + b"\n"
    handle = SlotJobHandle(client, slot.job_id, raw, env, path + (launch.script or b""), timeout=execution.timeout,
                           grace=runtime.config["limits.stop_grace"])
    return network, sidecar, handle


def _limits(options) -> tuple:
    """The LIMIT_KEYS of container options, as (key, value) pairs in LIMIT_KEYS order."""
    return tuple((k, options.host_config[k]) for k in LIMIT_KEYS if k in options.host_config)


def _bind_job(client, slot: SlotParts, launch):
    """Rename the held job container, set its limits unless it was created with these very ones
    (either way checked against what the engine holds) and attach to it; its prelude still waits
    for the environment, secrets and script."""
    api, job_id = client.api, slot.job_id
    api.rename(job_id, launch.name)
    wanted = _limits(launch.options)
    limits = dict(wanted)
    if wanted != slot.limits:
        answer = api._result(api._post_json(api._url("/containers/{0}/update", job_id), data=limits), json=True)
        check_engine_warnings((answer or {}).get("Warnings"), "job")
    held = api.inspect_container(job_id)
    if not held["State"].get("Running"):
        raise PhaseError("job", "the held job container of the slot is not running")
    wrong = {k: held["HostConfig"].get(k) for k, v in limits.items() if held["HostConfig"].get(k) != v}
    if wrong:
        raise PhaseError("job", f"the engine holds other limits than asked after the update: {wrong}")
    return _docker.attach(client, job_id)


def _bind_sidecar(runtime, slot: SlotParts, name: str, execution, token, network, resources) -> SidecarInfo:
    client, cfg = runtime.docker, runtime.config
    started = time.monotonic()
    client.api.rename(slot.sidecar_id, name)
    if cfg["redis.sidecar_auth"] == "acl":
        redis_url = create_acl_user(runtime, execution, resources)
    else:
        redis_url = runtime.sidecar_redis_url
    settings = json.dumps(sidecar_settings(execution, token, redis_url, cfg, network)).encode()
    raw = _docker.attach(client, slot.sidecar_id)
    try:
        _docker.send_and_close_stdin(raw, settings)
        ready, output = wait_ready(raw, cfg["sidecar.ready_timeout"])
    finally:
        _docker.close(raw)
    return ready_info(client, slot.sidecar_id, name, cfg["images.sidecar"], ready, output, started, cfg)
