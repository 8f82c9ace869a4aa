"""Docker Swarm plumbing shared by the built-in swarm plugins (not a plugin itself).

The swarm executor talks to a swarm manager's API: services (the sidecar as a replicated service
of one task, the job as a replicated-job without restarts), Swarm secrets (the sidecar's settings,
the job's secret env and script) and attachable overlay networks. Specs are sent as the Engine API
writes them (`/services/create`), so every field the engine knows is available and nothing is lost
in a client library's translation. What a service spec cannot express is refused here (see
`container_spec`), never skipped.

Output and exit status are read through the manager, wherever a task runs: the task's log
(`/tasks/{id}/logs`) and its status in the task list (`Status.ContainerStatus.ExitCode`); a task
whose node is down or gone has ended with its outcome unknown.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Iterator

from cronium.core.errors import PhaseError, SecurityNotApplied
from cronium.core.model import ContainerOptions
from cronium.plugins import _docker

#: Where Swarm mounts a task's secrets (a tmpfs, read-only).
SECRETS_DIR = "/run/secrets"
#: Labels the engine puts on a task's container.
SERVICE_ID_LABEL = "com.docker.swarm.service.id"
#: What the kernel may set before any job code runs, where the service spec has no field for it
#: (Docker 20.10, API 1.41: no NoNewPrivileges): `setpriv` (util-linux, in every cronium image).
NO_NEW_PRIVS = ("setpriv", "--no-new-privs", "--")
#: Task states after which a task's container has run (or never will).
DONE_STATES = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
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
                 constraints: list[str], one_shot: bool, stop_grace: float) -> dict:
    """A service of one task: a replicated-job (`one_shot`, never restarted) or one replica."""
    container = {**container, "StopGracePeriod": int(stop_grace * 1e9)}
    mode = {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}} if one_shot \
        else {"Replicated": {"Replicas": 1}}
    return {"Name": name, "Labels": labels, "Mode": mode, "EndpointSpec": {"Mode": "dnsrr"},
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


# --- tasks ---------------------------------------------------------------------------------------

def wait_for_task(client, service_id: str, timeout: float, phase: str) -> dict:
    """The service's task once its container exists (or it ended); a `PhaseError` when it was
    rejected, or not started within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        tasks = client.api.tasks(filters={"service": service_id})
        for task in tasks:
            status = task.get("Status") or {}
            if (status.get("ContainerStatus") or {}).get("ContainerID"):
                return task
            if status.get("State") in DONE_STATES:
                raise PhaseError(phase, f"the swarm could not run the {phase} task: {status.get('State')}: "
                                        f"{status.get('Err') or status.get('Message')}",
                                 hint="check the image on the node (`cronium images push`) and the placement")
        if time.monotonic() >= deadline:
            pending = "; ".join(f"{(t.get('Status') or {}).get('State')}: {(t.get('Status') or {}).get('Err') or ''}"
                                for t in tasks) or "no task yet"
            raise PhaseError(phase, f"the swarm did not start the {phase} task within {timeout:g}s ({pending})",
                             hint="check that a node matches the placement and has the image (swarm.task_timeout)")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def task_container(task: dict) -> str:
    """The task's container id (on whichever node the task runs)."""
    return task["Status"]["ContainerStatus"]["ContainerID"]


def task_logs(client, task_id: str, *, follow: bool, timeout: float | None = None
              ) -> Iterator[tuple[int, bytes | None]]:
    """The task's output as the manager serves it (`/tasks/{id}/logs`, from whichever node runs
    the task), demultiplexed like the attach stream (`_docker.demux`). With `timeout`, the stream
    is closed after that many seconds (the iteration then ends)."""
    yield from _closing(_open_task_logs(client, task_id, follow), timeout)


def _open_task_logs(client, task_id: str, follow: bool):
    api = client.api
    response = api._get(api._url("/tasks/{0}/logs", task_id),
                        params={"stdout": 1, "stderr": 1, "follow": int(follow)}, stream=True, timeout=None)
    api._raise_for_status(response)
    return response


def task_output(client, task_id: str, *, poll: float = 0.25, drain_timeout: float = 30.0
                ) -> Iterator[tuple[int, bytes | None]]:
    """The task's whole output in order, from its start until it ended, wherever it runs. A
    followed task log of the swarm does not end when the task does: a watcher closes it once the
    task has ended (or its node is down or gone), then what it had not delivered yet is read from
    a complete, unfollowed read (the bytes already yielded are skipped)."""
    response = _open_task_logs(client, task_id, follow=True)
    done = threading.Event()

    def watch():
        while not done.wait(poll):
            if task_ended(client, task_id):
                break
        interrupt(response)

    threading.Thread(target=watch, daemon=True, name=f"cronium-task-{task_id[:12]}").start()
    seen = 0
    try:
        for stream, data in _closing(response, None):
            seen += len(data or b"")
            yield stream, data
    finally:
        done.set()
    yield from _skip(task_logs(client, task_id, follow=False, timeout=drain_timeout), seen)


def _skip(frames, count: int) -> Iterator[tuple[int, bytes | None]]:
    for stream, data in frames:
        if data is not None and count:
            cut = min(count, len(data))
            data, count = data[cut:], count - cut
            if not data:
                continue
        yield stream, data


def task_ended(client, task_id: str) -> bool:
    """Whether the task is over: in a final state, gone, or on a node that is down or gone."""
    state, _task, node_lost = task_state(client, task_id)
    return node_lost is not None or state in DONE_STATES


def task_state(client, task_id: str) -> tuple[str | None, dict | None, str | None]:
    """(state, task, why its node is lost or None) as the manager sees it; state None: no task."""
    from docker.errors import NotFound

    try:
        task = client.api.inspect_task(task_id)
    except NotFound:
        return None, None, "the task is gone from the swarm (its node was removed?)"
    status = task.get("Status") or {}
    state = status.get("State")
    if state in DONE_STATES and (status.get("ContainerStatus") or {}).get("ExitCode") is not None:
        return state, task, None
    try:
        node = client.api.inspect_node(task["NodeID"])
    except NotFound:
        return state, task, f"its node {task['NodeID'][:12]} was removed from the swarm"
    if (node.get("Status") or {}).get("State") == "down":
        host = (node.get("Description") or {}).get("Hostname") or task["NodeID"][:12]
        return state, task, f"its node {host} is down (left the swarm, or its engine stopped)"
    return state, task, None


def _closing(response, timeout: float | None) -> Iterator[tuple[int, bytes | None]]:
    timer = threading.Timer(timeout, interrupt, (response,)) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        yield from _docker.demux(_body(response))
    finally:
        if timer:
            timer.cancel()
        response.close()


def interrupt(response) -> None:
    """End a streamed response another thread is reading: its socket is shut down first (closing
    the response alone does not wake a read blocked on it)."""
    import socket

    try:
        raw = response.raw._fp.fp.raw
        getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass  # already closed
    response.close()


def _body(response) -> Iterator[bytes]:
    try:
        yield from response.raw.stream(_docker.RECV_SIZE, decode_content=False)
    except Exception:  # closed under us (timeout, stop): the stream ends
        return


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
    """Remove the service, then its task containers and their tmpfs volumes (the engine would
    remove the containers later, in its own time, and keeps the volumes)."""
    from docker.errors import NotFound

    api = client.api
    try:
        labels = api.inspect_service(service_id)["Spec"].get("Labels") or {}
        api.remove_service(service_id)
    except NotFound:
        return
    for container in api.containers(all=True, filters={"label": f"{SERVICE_ID_LABEL}={service_id}"}):
        _docker.remove(client, "container", container["Id"], wait=0)
    owned = [f"{key}={labels[key]}" for key in _docker.OWNERSHIP_LABELS if key in labels]
    if owned and "cronium.role" in labels:
        for volume in _docker.labelled(client, "volume", *owned, f"cronium.role={labels['cronium.role']}"):
            _remove_volume(client, volume["Name"])


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
