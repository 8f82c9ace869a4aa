"""Docker Swarm plumbing shared by the built-in swarm plugins (not a plugin itself).

The swarm executor talks to a swarm manager's API: services (the sidecar as a replicated service
of one task, the job likewise, neither ever restarted), Swarm secrets (the sidecar's settings,
the job's secret env and script) and attachable overlay networks. Specs are sent as the Engine API
writes them (`/services/create`), so every field the engine knows is available and nothing is lost
in a client library's translation. What a service spec cannot express is refused here (see
`container_spec`), never skipped.

Tasks (their output, state and exit status, wherever they run) are read in `_swarm_tasks`.
"""
from __future__ import annotations

import re
import time

from cronium.core.errors import PhaseError, SecurityNotApplied
from cronium.core.model import ContainerOptions
from cronium.plugins import _docker
from cronium.plugins._swarm_tasks import task_ended

#: Where Swarm mounts a task's secrets (a tmpfs, read-only).
SECRETS_DIR = "/run/secrets"
#: Labels the engine puts on a task's container.
SERVICE_ID_LABEL = "com.docker.swarm.service.id"
#: What the kernel may set before any job code runs, where the service spec has no field for it
#: (Docker 20.10, API 1.41: no NoNewPrivileges): `setpriv` (util-linux, in every cronium image).
NO_NEW_PRIVS = ("setpriv", "--no-new-privs", "--")
#: How long past a removed service's stop grace its tasks may take to stop on their nodes.
TASK_STOP_SLACK = 15.0
_HINT_INIT = "make this engine a swarm manager (`docker swarm init`, see docs/swarm.md), or use executor = \"docker\""


def manager_node(client, phase: str) -> str:
    """This engine's node id; a `PhaseError` when it is not an active swarm manager."""
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise PhaseError(phase, f"the Docker engine is not a swarm manager (swarm state: "
                                f"{swarm.get('LocalNodeState') or 'unknown'})", hint=_HINT_INIT)
    return swarm["NodeID"]


def image_name(config, tag: str) -> str:
    """The name a service runs `tag` under: its name in `images.registry` when one is set (every
    node pulls it from there), else the local tag (a single node)."""
    from cronium.core.host.images import registry_tag

    return registry_tag(tag, config["images.registry"])


def is_manager(client) -> bool:
    swarm = client.info().get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def post(client, path: str, data: dict) -> dict:
    """POST an Engine API object as JSON; the engine's answer."""
    api = client.api
    return api._result(api._post_json(api._url(path), data=data), json=True)


# --- objects ---------------------------------------------------------------------------------------

def create_overlay(client, name: str, *, subnet: str | None, labels: dict, internal: bool,
                   encrypted: bool) -> dict:
    """An attachable overlay network, IPv6 off, `Internal` as asked, on `subnet` if given."""
    options = {"encrypted": ""} if encrypted else {}
    ipam = {"Driver": "default", "Config": [{"Subnet": subnet}] if subnet else []}
    return post(client, "/networks/create", {
        "Name": name, "Driver": "overlay", "Attachable": True, "Internal": internal, "EnableIPv6": False,
        "CheckDuplicate": True, "Options": options, "IPAM": ipam, "Labels": labels})


def create_secret(client, name: str, data: bytes, labels: dict) -> str:
    import base64

    if len(data) > 500 * 1024:
        raise PhaseError("job", f"{name} is {len(data)} bytes: a Swarm secret holds at most 500 KiB",
                         hint="use a smaller script (or executor = \"docker\", which streams it)")
    answer = post(client, "/secrets/create", {"Name": name, "Labels": labels,
                                              "Data": base64.b64encode(data).decode()})
    return answer["ID"]


def secret_ref(secret_id: str, name: str, file_name: str, user: str | None) -> dict:
    """Mount a secret at /run/secrets/<file_name>, readable by the task's user only."""
    uid, _, gid = (user or "0").partition(":")
    return {"SecretID": secret_id, "SecretName": name,
            "File": {"Name": file_name, "UID": uid, "GID": gid or uid, "Mode": 0o400}}


def create_service(client, spec: dict, phase: str) -> str:
    from docker.errors import APIError

    try:
        return post(client, "/services/create", spec)["ID"]
    except APIError as exc:
        raise PhaseError(phase, f"the swarm refused to create {spec['Name']}: {exc.explanation or exc}") from None


def service_spec(name: str, *, labels: dict, container: dict, resources: dict, networks: list[dict],
                 constraints: list[str], stop_grace: float) -> dict:
    """A service of one replicated task that is never restarted (restart condition `none`: a task
    that ended stays ended, its exit code in the task list). Not a `replicated-job`: Docker 20.10's
    job orchestrator leaves the running task of a removed job service running on its node (its
    desired state stays `complete`), so neither a stop nor `cronium gc` could end it; a replicated
    service's tasks get desired state `remove` and their node stops and removes them."""
    container = {**container, "StopGracePeriod": int(stop_grace * 1e9)}
    return {"Name": name, "Labels": labels, "Mode": {"Replicated": {"Replicas": 1}}, "EndpointSpec": {"Mode": "dnsrr"},
            "TaskTemplate": {"ContainerSpec": container, "Resources": resources, "Networks": networks,
                             "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
                             "Placement": {"Constraints": constraints},
                             "LogDriver": {"Name": "json-file", "Options": {"max-size": "64m", "max-file": "2"}}}}


# --- the security profile as a service spec --------------------------------------------------------

def container_spec(image: str, command: list[str], options: ContainerOptions, *, env: dict, labels: dict,
                   secrets: list[dict], role: str, init: bool) -> tuple[dict, dict]:
    """(ContainerSpec, Resources) for merged container options. Every HostConfig key a plugin may
    contribute is mapped, or refused with `SecurityNotApplied` when a service spec cannot hold it."""
    hc = dict(options.host_config)
    spec: dict = {"Image": image, "Command": [*NO_NEW_PRIVS, *command] if _no_new_privs(hc, role) else command,
                  "Env": [f"{k}={v}" for k, v in env.items()], "Labels": labels, "Secrets": secrets,
                  "User": options.user or "", "ReadOnly": bool(hc.pop("ReadonlyRootfs", False)), "Init": init,
                  "CapabilityDrop": hc.pop("CapDrop", []), "CapabilityAdd": hc.pop("CapAdd", []),
                  "Sysctls": hc.pop("Sysctls", {}), "DNSConfig": {"Options": hc.pop("DnsOptions", [])},
                  "Ulimits": hc.pop("Ulimits", []),
                  "Mounts": [_tmpfs(path, spec, labels) for path, spec in (hc.pop("Tmpfs", {}) or {}).items()]}
    if options.working_dir:
        spec["Dir"] = options.working_dir
    if hc.pop("Privileged", False):
        raise SecurityNotApplied(f"an unprivileged {role} task", "a swarm service cannot be privileged")
    memory, swap = hc.pop("Memory", 0), hc.pop("MemorySwap", 0)
    check_swap(memory, swap, role)
    limits = {"MemoryBytes": memory, "NanoCPUs": hc.pop("NanoCpus", 0), "Pids": hc.pop("PidsLimit", 0)}
    if hc:
        raise SecurityNotApplied(f"the {role} options {', '.join(sorted(hc))}",
                                 "a Docker Swarm service spec has no field for them")
    return spec, {"Limits": limits}


def _no_new_privs(hc: dict, role: str) -> bool:
    """SecurityOpt: no-new-privileges is applied with setpriv; any seccomp other than Docker's
    default (which the engine applies to every task) is refused."""
    wanted = False
    for option in hc.pop("SecurityOpt", []) or []:
        if option.startswith("no-new-privileges"):
            wanted = option.partition(":")[2] in ("", "true")
        elif option.startswith("seccomp="):
            raise SecurityNotApplied(f"the seccomp profile of the {role} task",
                                     "a Docker 20.10 service spec has no seccomp field (only Docker's default "
                                     "profile applies to tasks); use a profile with seccomp = \"default\"")
        else:
            raise SecurityNotApplied(f"the security option {option!r} on the {role} task",
                                     "a Docker Swarm service spec has no field for it")
    return wanted


def _tmpfs(path: str, options: str, labels: dict) -> dict:
    """A tmpfs with exactly the profile's mount options (size, mode, uid, nosuid, nodev…): an
    anonymous volume of the `local` driver backed by a tmpfs, created on the task's node and removed
    with the task's container. (A service's own tmpfs mounts keep only the size, not mode or owner.)"""
    driver = {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs", "o": options}}
    return {"Type": "volume", "Target": path, "VolumeOptions": {"Labels": labels, "DriverConfig": driver}}


def node_has_swap(path: str = "/proc/swaps") -> bool:
    try:
        with open(path) as file:
            return len(file.read().strip().splitlines()) > 1
    except OSError:
        return True  # unknown: assume the worst


def check_swap(memory: int, memory_swap: int, role: str, *, has_swap=node_has_swap) -> None:
    """A service spec cannot limit swap (the engine allows as much swap as memory). Accepted only
    when the profile allows that much, or the node has no swap at all."""
    if memory and memory_swap < 2 * memory and has_swap():
        raise SecurityNotApplied(f"the swap limit of the {role} task",
                                 "a Docker Swarm service cannot limit swap and this node has swap; "
                                 "turn swap off on the swarm's nodes, or allow swap = memory in the profile")


# --- removal and reaping ---------------------------------------------------------------------------

def lookup(client, kind: str, name: str) -> tuple[str, dict] | None:
    """(id, labels) of the service, secret or network called `name`; None when there is none."""
    from docker.errors import NotFound

    api = client.api
    try:
        if kind == "service":
            info = api.inspect_service(name)
        elif kind == "secret":
            info = api.inspect_secret(name)
        else:
            info = api.inspect_network(name)
            return (info["Id"], info.get("Labels") or {}) if info.get("Name") == name else None
    except NotFound:
        return None
    spec = info.get("Spec") or {}
    return (info["ID"], spec.get("Labels") or {}) if spec.get("Name") == name else None


def remove_owned(client, kind: str, name: str, labels: dict) -> None:
    """Remove the object called `name` by id, only while it is this attempt's (its ownership
    labels are those of `labels`); one that is gone is fine."""
    found = _docker.while_engine_down(lambda: lookup(client, kind, name), wait=_docker.CLEANUP_WAIT)
    if found is not None and all(found[1].get(k) == labels[k] for k in _docker.OWNERSHIP_LABELS if k in labels):
        remove(client, kind, found[0])


def remove(client, kind: str, ident: str, wait: float = _docker.CLEANUP_WAIT) -> None:
    from docker.errors import NotFound

    api = client.api
    action = {"service": lambda: _remove_service(client, ident), "secret": lambda: api.remove_secret(ident),
              "network": lambda: _remove_network(client, ident)}[kind]

    def remove_if_present():
        try:
            action()
        except NotFound:
            pass

    _docker.while_engine_down(remove_if_present, wait=wait)


def _remove_service(client, service_id: str) -> None:
    """Remove the service; wait until their nodes have stopped its tasks on other nodes
    (`wait_tasks_stopped`); remove (by force) its task containers and their tmpfs volumes on this
    engine (the engine would remove the containers later, in its own time, and keeps the volumes)."""
    from docker.errors import NotFound

    api = client.api
    try:
        spec = api.inspect_service(service_id)["Spec"]
        tasks = api.tasks(filters={"service": service_id})
        api.remove_service(service_id)
    except NotFound:
        return
    labels = spec.get("Labels") or {}
    grace = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("StopGracePeriod") or 0
    here = (client.info().get("Swarm") or {}).get("NodeID")  # this engine's tasks: removed by force below
    wait_tasks_stopped(client, [t["ID"] for t in tasks if t.get("NodeID") != here], grace / 1e9 + TASK_STOP_SLACK,
                       spec.get("Name", service_id))
    for container in api.containers(all=True, filters={"label": f"{SERVICE_ID_LABEL}={service_id}"}):
        _docker.remove(client, "container", container["Id"], wait=0)
    owned = [f"{key}={labels[key]}" for key in _docker.OWNERSHIP_LABELS if key in labels]
    if owned and "cronium.role" in labels:
        for volume in _docker.labelled(client, "volume", *owned, f"cronium.role={labels['cronium.role']}"):
            _remove_volume(client, volume["Name"])


def wait_tasks_stopped(client, task_ids: list[str], timeout: float, service: str) -> None:
    """Wait until each task of a removed service is over (gone from the task list, in a final
    state, or on a node that is down or gone), so the task no longer runs on any node before its
    secrets and network are removed; at most `timeout` seconds, then a RuntimeError naming the
    tasks still running and their nodes."""
    deadline = time.monotonic() + timeout
    pending = list(task_ids)
    while pending:
        pending = [task_id for task_id in pending if not task_ended(client, task_id)]
        if not pending:
            return
        if time.monotonic() >= deadline:
            where = ", ".join(f"{t[:12]} on node {_task_node(client, t)}" for t in pending)
            raise RuntimeError(f"{service} was removed but its task {where} was still running after {timeout:g}s: "
                               "that node has not stopped it (check it with `docker node ps`)")
        time.sleep(0.2)


def _task_node(client, task_id: str) -> str:
    from docker.errors import NotFound

    try:
        node_id = client.api.inspect_task(task_id).get("NodeID") or "?"
        node = client.api.inspect_node(node_id)
        return (node.get("Description") or {}).get("Hostname") or node_id[:12]
    except NotFound:
        return "?"


def _remove_volume(client, name: str, wait: float = 10.0) -> None:
    """A volume is in use until the engine has let go of its container: retry for a while."""
    from docker.errors import APIError, NotFound

    deadline = time.monotonic() + wait
    while True:
        try:
            client.api.remove_volume(name, force=True)
            return
        except NotFound:
            return
        except APIError as exc:
            if "in use" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def _remove_network(client, network_id: str, wait: float = 30.0) -> None:
    """A removed task's endpoint is released asynchronously: retry while it is still there."""
    from docker.errors import APIError

    from docker.errors import NotFound

    deadline = time.monotonic() + wait
    while True:
        try:
            client.api.remove_network(network_id)
            break
        except APIError as exc:
            if "active endpoints" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    while time.monotonic() < deadline:  # the swarm removes an overlay in its own time: wait for it
        try:
            client.api.inspect_network(network_id)
        except NotFound:
            return
        time.sleep(0.1)


def listed(client, kind: str, role: str) -> list[dict]:
    """Services, secrets or networks labelled `cronium.managed` with `cronium.role=<role>`, as
    `{"Id", "Name", "Labels"}`."""
    filters = {"label": ["cronium.managed=true", f"cronium.role={role}"]}
    api = client.api
    if kind == "network":
        return [{"Id": n["Id"], "Name": n["Name"], "Labels": n.get("Labels") or {}}
                for n in api.networks(filters=filters)]
    found = api.services(filters=filters) if kind == "service" else api.secrets(filters=filters)
    return [{"Id": o["ID"], "Name": o["Spec"]["Name"], "Labels": o["Spec"].get("Labels") or {}} for o in found]


def reap(client, kind: str, role: str, judge, dry_run: bool, report, *, remove_one=None) -> None:
    """The `reap_orphans` chore for swarm objects of one role, anywhere in the swarm (a manager
    sees them all). Nothing to do when this engine is not a swarm manager."""
    if not is_manager(client):
        return
    _docker.reap(client, f"swarm-{kind}", listed(client, kind, role), judge, dry_run, report,
                 remove_one=remove_one or (lambda item: remove(client, kind, item["Id"], wait=0)))


def remove_services_of(client, labels: dict) -> None:
    """Remove every service of the execution (and installation) `labels` name: what an orphaned
    network of that execution still has attached (the plugins that reap them may come later)."""
    wanted = [f"{key}={labels[key]}" for key in ("cronium.execution", "cronium.installation") if key in labels]
    for service in client.api.services(filters={"label": ["cronium.managed=true", *wanted]}):
        remove(client, "service", service["ID"], wait=0)


def constraints(runtime, execution, *extra: str) -> list[str]:
    """Placement: swarm.placement from config, the job's own, and `extra`."""
    return [*runtime.config["swarm.placement"], *execution.placement, *extra]
