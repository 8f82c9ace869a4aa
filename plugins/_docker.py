"""Docker plumbing shared by the built-in Docker plugins (not a plugin itself).

We attach to a container *before* starting it, with stdin open: the engine then hands us every
byte the container writes (no log-driver round trip, nothing missed), and we can write to its
stdin — that is how scripts and secrets are delivered without argv, env or bind mounts.
"""
from __future__ import annotations

import time

import socket
import struct
from typing import Iterable, Iterator

HEADER = struct.Struct(">BxxxL")
RECV_SIZE = 256 * 1024


def attach(client, container_id: str) -> socket.socket:
    """Attach stdin/stdout/stderr of a created (not yet started) container; returns the raw socket."""
    sock = client.api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(None)
    return raw


def send_and_close_stdin(raw: socket.socket, data: bytes) -> None:
    """Write `data` to the container's stdin, then close it (EOF for the reader inside)."""
    if data:
        raw.sendall(data)
    try:
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def read_frames(raw: socket.socket) -> Iterator[tuple[int, bytes | None]]:
    """Demultiplex the attach stream: yields (stream, payload) with consecutive frames of the same
    stream joined, and (0, None) after each read to mark 'nothing more right now'. Ends at EOF."""
    def received() -> Iterator[bytes]:
        while True:
            try:
                data = raw.recv(RECV_SIZE)
            except OSError:
                return
            if not data:
                return
            yield data

    return demux(received())


def demux(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """`read_frames` over any source of the engine's multiplexed bytes (an attach socket, the
    body of a followed `logs` response), in the pieces they arrive in."""
    buf = b""
    unpack = HEADER.unpack_from
    size = HEADER.size
    for data in chunks:
        buf = buf + data if buf else data
        pos, end = 0, len(buf)
        cur_stream, parts = 0, []
        while end - pos >= size:
            stream, length = unpack(buf, pos)
            if end - pos - size < length:
                break
            start = pos + size
            if stream != cur_stream and parts:
                yield cur_stream, b"".join(parts)
                parts = []
            cur_stream = stream
            parts.append(buf[start:start + length])
            pos = start + length
        if parts:
            yield cur_stream, b"".join(parts)
        buf = buf[pos:]
        yield 0, None


def close(raw: socket.socket) -> None:
    try:
        raw.close()
    except OSError:
        pass


def engine_unreachable(exc: BaseException) -> bool:
    """True when an exception means the engine itself did not answer (down or restarting)."""
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError)):
        return True
    text = str(exc).lower()
    return "connection refused" in text or "connection aborted" in text or "no such file or directory" in text


def while_engine_down(action, *, wait: float):
    """Run `action`; while the engine does not answer, retry for up to `wait` seconds (an engine
    restart takes a few seconds: cleanup must still happen once it is back)."""
    import time

    deadline = time.monotonic() + wait
    delay = 0.2
    while True:
        try:
            return action()
        except Exception as exc:
            if not engine_unreachable(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


#: Seconds cleanup keeps retrying while the engine is unreachable.
CLEANUP_WAIT = 120.0


#: Seconds `remove` waits for a container whose removal another party started (the reaper of
#: another process and the job's own cleanup may remove the same container at once).
REMOVAL_IN_PROGRESS_WAIT = 30.0


def remove(client, kind: str, ident: str, wait: float = CLEANUP_WAIT) -> None:
    """Remove a container (forced: killed if running, with its anonymous volumes), a network or a
    volume, by id or name; one that is already gone is fine, and one whose removal someone else
    started is waited for: it is gone when this returns. Retries for up to `wait` seconds while
    the engine does not answer."""
    from docker.errors import APIError, NotFound

    api = client.api
    action = {"container": lambda: api.remove_container(ident, force=True, v=True),
              "network": lambda: api.remove_network(ident),
              "volume": lambda: api.remove_volume(ident, force=True)}[kind]

    def remove_if_present(tries: int = 8):
        try:
            action()
        except NotFound:
            pass
        except APIError as exc:
            if kind == "container" and "already in progress" in str(exc):
                wait_until_gone(api, ident, REMOVAL_IN_PROGRESS_WAIT)
                return
            if kind != "network" or "active endpoints" not in str(exc) or tries <= 1:
                raise
            detach_all(api, ident)  # an endpoint the engine has not released yet
            time.sleep(0.25)  # a container being removed beside it releases its endpoint late
            remove_if_present(tries - 1)

    while_engine_down(remove_if_present, wait=wait)


def wait_until_gone(api, container: str, seconds: float) -> None:
    """Wait until the engine no longer knows `container` (its removal was started elsewhere);
    raises a PhaseError naming it if it is still there after `seconds`."""
    from cronium.core.errors import PhaseError
    from docker.errors import NotFound

    deadline = time.monotonic() + seconds
    while True:
        try:
            api.inspect_container(container)
        except NotFound:
            return
        if time.monotonic() >= deadline:
            raise PhaseError("cleanup", f"container {container} was still being removed after {seconds:.0f} s",
                             hint="the engine is slow to remove it; `cronium gc` removes it if it stays")
        time.sleep(0.05)


def detach_all(api, network: str) -> None:
    """Disconnect (forced) whatever is still attached to `network`; the engine releases a removed
    container's endpoint asynchronously, so a network removal right after may still see it."""
    from docker.errors import APIError, NotFound

    try:
        attached = api.inspect_network(network).get("Containers") or {}
    except NotFound:
        return
    for endpoint in attached:
        try:
            api.disconnect_container_from_network(endpoint, network, force=True)
        except APIError:
            pass  # gone meanwhile; if it is still attached, the removal says so


#: The labels that say which attempt of which execution, of which installation, an object is.
OWNERSHIP_LABELS = ("cronium.execution", "cronium.owner", "cronium.attempt", "cronium.installation")


def remove_owned(client, kind: str, name: str, labels, wait: float = CLEANUP_WAIT) -> None:
    """Remove the container or network called `name` — by id, and only while it carries the
    ownership labels of `labels` (OWNERSHIP_LABELS): when a newer attempt of the same execution
    (another owner) has taken the name meanwhile, its object stays. One that is gone is fine."""
    found = owned_by(client, kind, name, wait=wait)
    if found is not None and _same_owner(found[1], labels):
        remove(client, kind, found[0], wait=wait)


class Owned:
    """An execution's container or network, registered for removal before the create call.

    Until the engine has answered the create, the object is known by name only, and its removal
    goes through `remove_owned` (one inspect to see whose it is, then the removal by id). Once
    `created(id)` says what the engine created, the removal is one call by that id: an id is never
    reused, so it can only be this attempt's object (a newer attempt that took the name made
    another one, with another id)."""

    def __init__(self, client, kind: str, name: str, labels) -> None:
        self._client, self.kind, self.name, self._labels = client, kind, name, labels
        self.id: str | None = None

    def created(self, ident: str) -> str:
        self.id = ident
        return ident

    def remove(self, wait: float = CLEANUP_WAIT) -> None:
        if self.id is not None:
            remove(self._client, self.kind, self.id, wait=wait)
        else:
            remove_owned(self._client, self.kind, self.name, self._labels, wait=wait)


def taken_by_another(client, kind: str, name: str, labels, wait: float = CLEANUP_WAIT) -> bool:
    """True when an object called `name` exists and belongs to another attempt than `labels`'."""
    found = owned_by(client, kind, name, wait=wait)
    return found is not None and not _same_owner(found[1], labels)


def owned_by(client, kind: str, name: str, wait: float = CLEANUP_WAIT) -> tuple[str, dict] | None:
    """(id, labels) of the container or network called `name`, None when there is none."""
    from docker.errors import NotFound

    api = client.api

    def lookup():
        try:
            if kind == "container":
                info = api.inspect_container(name)
                return info["Id"], (info.get("Config") or {}).get("Labels") or {}
            info = api.inspect_network(name)
            return (info["Id"], info.get("Labels") or {}) if info.get("Name") == name else None
        except NotFound:
            return None

    return while_engine_down(lookup, wait=wait)


def _same_owner(found: dict, labels) -> bool:
    return all(found.get(key) == labels[key] for key in OWNERSHIP_LABELS if key in labels)


def labelled(client, kind: str, *labels: str, name: str | None = None) -> list[dict]:
    """Containers (also stopped ones), networks or volumes carrying every label given (`key` or
    `key=value`), and whose name contains `name` if given — as the engine lists them, plus a
    `Name` key for containers (their first name, without the slash)."""
    filters: dict = {"label": list(labels)}
    if name:
        filters["name"] = name
    api = client.api
    if kind == "container":
        found = api.containers(all=True, filters=filters)
        for c in found:
            c["Name"] = (c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/")
        return found
    if kind == "network":
        return api.networks(filters=filters)
    return api.volumes(filters=filters).get("Volumes") or []


def reap(client, kind: str, found: list[dict], judge, dry_run: bool, report, *, labels_of=None,
         remove_one=None) -> None:
    """The `reap_orphans` chore for engine objects listed by `labelled()`: ask `judge` about each
    (by its labels, or by `labels_of(item)`), remove the orphaned ones unless `dry_run` (with
    `remove_one(item)` if given, else `remove()`), and account for each in `report`."""
    for item in found:
        if item.get("State") == "removing":
            continue  # the engine is already removing it
        what = f"{kind} {item['Name']}"
        labels = labels_of(item) if labels_of is not None else item.get("Labels") or {}
        if not judge.verdict(labels):
            report.kept.append(what)
            continue
        if not dry_run:
            try:
                if remove_one is not None:
                    remove_one(item)
                else:
                    remove(client, kind, item.get("Id") or item["Name"], wait=0)
            except Exception as exc:
                report.errors.append(f"{what}: {exc}")
                continue
        report.removed.append(what)


def create_network(client, name: str, *, internal: bool, ipam: dict, labels: dict, options: dict) -> dict:
    """Create a bridge network saying `Internal` and `EnableIPv6: false` explicitly (docker-py
    sends neither when false, and an engine whose defaults turn IPv6 on would then give the
    network IPv6). Returns the engine's answer (`{"Id": ...}`)."""
    api = client.api
    data = {"Name": name, "Driver": "bridge", "Options": options, "IPAM": ipam, "Labels": labels,
            "CheckDuplicate": True, "Internal": internal, "EnableIPv6": False}
    return api._result(api._post_json(api._url("/networks/create"), data=data), json=True)


_HOST_CONFIG_ARGS = {
    "ReadonlyRootfs": "read_only", "CapDrop": "cap_drop", "CapAdd": "cap_add", "SecurityOpt": "security_opt",
    "Memory": "mem_limit", "MemorySwap": "memswap_limit", "NanoCpus": "nano_cpus", "PidsLimit": "pids_limit",
    "Tmpfs": "tmpfs", "Ulimits": "ulimits", "Privileged": "privileged", "Sysctls": "sysctls",
    "DnsOptions": "dns_opt",
}


def host_config_kwargs(host_config: dict) -> dict:
    """Docker API HostConfig keys (as plugins contribute them) -> create_host_config() arguments."""
    from cronium.core.errors import PhaseError
    from docker.types import Ulimit

    out = {}
    for key, value in host_config.items():
        arg = _HOST_CONFIG_ARGS.get(key)
        if arg is None:
            raise PhaseError("security", f"unsupported HostConfig key {key!r} in container options",
                             hint="plugins may contribute only: " + ", ".join(sorted(_HOST_CONFIG_ARGS)))
        if key == "Ulimits":
            value = [Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"]) for u in value]
        out[arg] = value
    return out


def create_error(exc, *, phase: str, name: str, image: str, role: str, own_image: bool = False):
    """A PhaseError for a failed container create; a missing image gets the fix to build it
    (`own_image`: an image the user named, not one of cronium's)."""
    from cronium.core.errors import PhaseError
    from docker.errors import ImageNotFound

    if isinstance(exc, ImageNotFound) or "no such image" in str(exc).lower():
        hint = (f"build or load it on this engine first (docker build -t {image} …, docker load, or docker pull "
                f"where a registry is reachable): cronium never pulls" if own_image else
                "build the images with `cronium images build` (no registry is used)")
        return PhaseError(phase, f"the {role} image '{image}' is not present on the Docker engine", hint=hint)
    return PhaseError(phase, f"the engine refused to create {name}: {getattr(exc, 'explanation', None) or exc}")
