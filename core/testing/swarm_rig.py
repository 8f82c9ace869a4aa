"""A two-node Docker Swarm on one machine, for tests: this host's engine as manager and a second
`dockerd` in its own network namespace as worker, with a private registry both nodes pull from.

Privileged containers are refused on these machines, so Docker-in-Docker is out; a second engine in
a network namespace works (docs/swarm-setup.md). The rig:

- a network namespace `cronium-rig` and a veth pair `crrig0` (host, 10.214.0.1/30) / `crrig1`
  (namespace, 10.214.0.2/30): the project's own range, outside the job network pool; the namespace
  has no default route, so the worker reaches nothing but this host's veth address;
- a `dockerd` started with `nsenter --net` (not `ip netns exec`: that remounts /sys and hides the
  cgroup mounts) inside its own UTS namespace (hostname `cronium-rig-worker`, so placement by
  `node.hostname` tells the nodes apart), with data, exec root, pid file and socket under
  `/tmp/cronium-swarm-rig`, `--cgroup-parent /cronium-rig` and `--storage-driver vfs`;
- the manager advertises and listens on 10.214.0.1 (`HostSwarm`: init only when the engine is in
  no swarm); the worker joins advertising 10.214.0.2, and gets the node labels asked for;
- `LocalRegistry` on 10.214.0.1 with TLS (its CA in /etc/docker/certs.d for both engines).

`SwarmRig.stop()` undoes all of it on every path (node leave and rm, dockerd stopped, mounts,
folders, veth, namespace, registry and its CA, the manager's swarm only if the rig made it) and
`clean_stale()` removes what a killed test session left. Callers hold
/tmp/cronium-integration.lock: the rig changes the shared engine's swarm state while it runs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .registry import LocalRegistry
from .swarm_host import HostSwarm

NETNS = "cronium-rig"
HOST_IF, NS_IF = "crrig0", "crrig1"
HOST_ADDR, NS_ADDR, PREFIX = "10.214.0.1", "10.214.0.2", 30
WORKER_HOSTNAME = "cronium-rig-worker"
ROOT = Path("/tmp/cronium-swarm-rig")
#: Exists while a rig holds a swarm whose init made docker_gwbridge (outside ROOT: `clean_stale()`
#: removes ROOT, and the next rig must still know whether a killed rig's swarm made it).
GWBRIDGE_MARK = Path("/tmp/cronium-swarm-rig.made-gwbridge")
CGROUP_PARENT = "/cronium-rig"
REGISTRY_PORT = 5714


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


class SwarmRig:
    """Start with `start()` (or as a context manager); `manager`/`worker` are docker clients."""

    def __init__(self, manager_client, *, worker_labels: dict[str, str] | None = None, registry: bool = True):
        self.manager = manager_client
        self.worker = None
        self.worker_labels = {"cronium.rig": "worker", **(worker_labels or {})}
        self.host_swarm = HostSwarm(manager_client, advertise_addr=HOST_ADDR)
        self.registry = LocalRegistry(HOST_ADDR, REGISTRY_PORT, ROOT / "registry", tls=True) if registry else None
        self.worker_node_id = ""
        self._pushed: list[str] = []

    # --- start --------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "SwarmRig":
        clean_stale()
        info = self.manager.info().get("Swarm") or {}
        if info.get("LocalNodeState") == "active" and info.get("NodeAddr") == HOST_ADDR:
            # A swarm on the rig's own address: a killed rig made it (and maybe its docker_gwbridge).
            self.host_swarm.adopt_stale(made_gwbridge=GWBRIDGE_MARK.exists())
            self._restore_host_swarm()
        try:
            _make_netns()
            self.worker = _start_dockerd(timeout)
            self.host_swarm.ensure()
            if self.host_swarm.made_gwbridge:
                GWBRIDGE_MARK.touch()
            else:
                GWBRIDGE_MARK.unlink(missing_ok=True)  # a stale mark must not name another's gwbridge
            if self.registry is not None:
                self.registry.start()
            self._join(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _join(self, timeout: float) -> None:
        manager_addr = self._manager_addr()
        if manager_addr.startswith("127."):
            raise RuntimeError(f"this engine is already a swarm manager advertising {manager_addr}, which the "
                               "rig's worker cannot reach from its namespace: leave that swarm first")
        if manager_addr != HOST_ADDR:  # a swarm the rig did not make: reach its manager's address only
            _run("ip", "netns", "exec", NETNS, "ip", "route", "replace", f"{manager_addr}/32", "dev", NS_IF)
        self.worker.swarm.join(remote_addrs=[f"{manager_addr}:2377"], join_token=self.host_swarm.join_token(),
                               advertise_addr=NS_ADDR, listen_addr=f"{NS_ADDR}:2377")
        self.worker_node_id = (self.worker.info().get("Swarm") or {}).get("NodeID", "")
        deadline = time.monotonic() + timeout
        while True:
            node = self.manager.api.inspect_node(self.worker_node_id)
            if (node.get("Status") or {}).get("State") == "ready":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the rig's worker did not become ready: {node.get('Status')}")
            time.sleep(0.2)
        spec = dict(node["Spec"], Labels={**(node["Spec"].get("Labels") or {}), **self.worker_labels})
        self.manager.api.update_node(self.worker_node_id, node["Version"]["Index"], spec)

    def _manager_addr(self) -> str:
        info = self.manager.info().get("Swarm") or {}
        return info.get("NodeAddr") or HOST_ADDR

    def push(self, tags: dict[str, str], names) -> list[str]:
        """Push cronium images to the rig's registry (`cronium.core.host.images.push_images`)."""
        from ..host.images import push_images

        pushed = push_images(self.manager, tags, self.registry.address, names=names)
        self._pushed.extend(pushed)
        return pushed

    # --- stop ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Undo everything, each step on its own (one failing step never skips the next)."""
        steps = [self._leave_worker, self._stop_worker_engine, self._remove_worker_node, _remove_netns,
                 self._stop_registry, self._untag_pushed, self._restore_host_swarm, _remove_root]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - collected and raised after every step ran
                errors.append(f"{getattr(step, '__name__', step)}: {exc}")
        if errors:
            raise RuntimeError("the swarm rig's teardown failed in part: " + "; ".join(errors))

    def _restore_host_swarm(self) -> None:
        """Leave the manager's swarm if the rig made it, with the docker_gwbridge its init made."""
        self.host_swarm.restore()
        GWBRIDGE_MARK.unlink(missing_ok=True)

    def _leave_worker(self) -> None:
        if self.worker is not None and _socket().exists():
            with contextlib.suppress(Exception):
                self.worker.swarm.leave(force=True)

    def _stop_worker_engine(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.worker = None
        _stop_dockerd()

    def _remove_worker_node(self) -> None:
        import docker.errors

        if self.worker_node_id and (self.manager.info().get("Swarm") or {}).get("ControlAvailable"):
            with contextlib.suppress(docker.errors.NotFound):
                self.manager.api.remove_node(self.worker_node_id, force=True)
        self.worker_node_id = ""

    def _stop_registry(self) -> None:
        if self.registry is not None:
            self.registry.stop()

    def _untag_pushed(self) -> None:
        import docker.errors

        for ref in self._pushed:
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.manager.images.remove(ref)
        self._pushed = []

    def __enter__(self) -> "SwarmRig":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def rig_unavailable() -> str:
    """Why the rig cannot run on this machine ("" when it can)."""
    from .registry import BINARY

    if os.geteuid() != 0:
        return "it needs root (network namespaces, a second dockerd)"
    for tool in ("ip", "nsenter", "unshare", "dockerd"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    if not Path(BINARY).exists():
        return f"{BINARY} is missing (Debian package docker-registry)"
    return ""


def _socket() -> Path:
    return ROOT / "docker.sock"


def _make_netns() -> None:
    _run("ip", "netns", "add", NETNS)
    _run("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
    _run("ip", "link", "set", NS_IF, "netns", NETNS)
    _run("ip", "addr", "add", f"{HOST_ADDR}/{PREFIX}", "dev", HOST_IF)
    _run("ip", "link", "set", HOST_IF, "up")
    for args in (("ip", "addr", "add", f"{NS_ADDR}/{PREFIX}", "dev", NS_IF), ("ip", "link", "set", NS_IF, "up"),
                 ("ip", "link", "set", "lo", "up")):
        _run("ip", "netns", "exec", NETNS, *args)


def _start_dockerd(timeout: float):
    import docker

    for sub in ("data", "exec"):
        (ROOT / sub).mkdir(parents=True, exist_ok=True)
    command = (f"hostname {WORKER_HOSTNAME} && exec dockerd --data-root {ROOT / 'data'} --exec-root {ROOT / 'exec'}"
               f" --pidfile {ROOT / 'dockerd.pid'} -H unix://{_socket()} --cgroup-parent {CGROUP_PARENT}"
               f" --storage-driver vfs --log-level warn")
    log = open(ROOT / "dockerd.log", "ab")
    subprocess.Popen(["nsenter", f"--net=/var/run/netns/{NETNS}", "unshare", "--uts", "sh", "-c", command],
                     stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    client = docker.DockerClient(base_url=f"unix://{_socket()}", timeout=120, version="1.41")
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return client
        except Exception as exc:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                tail = (ROOT / "dockerd.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"the rig's dockerd did not answer within {timeout:g}s ({exc}): {tail}") from None
            time.sleep(0.2)


def _stop_dockerd(timeout: float = 30.0) -> None:
    """SIGTERM to the rig's dockerd (found by its command line: the pid file may not be written
    yet), then SIGKILL to whatever of the rig is left (dockerd, containerd, shims)."""
    engines = [pid for pid, argv in _rig_processes() if argv and Path(argv[0]).name == "dockerd"]
    for pid in engines:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in engines) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, _ in _rig_processes():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def _rig_processes(part: Path = ROOT / "exec") -> list[tuple[int, list[str]]]:
    """(pid, argv) of the processes whose command line names `part` of the rig's folder (the exec
    root: its dockerd, containerd and shims; the whole folder: its registry too)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(str(part) in arg for arg in argv):
            found.append((int(proc.name), argv))
    return found


def _remove_netns() -> None:
    if _run("ip", "link", "show", HOST_IF, check=False).returncode == 0:
        _run("ip", "link", "del", HOST_IF)
    if Path(f"/var/run/netns/{NETNS}").exists():
        _run("ip", "netns", "del", NETNS)


def _remove_root() -> None:
    """Unmount what the rig's dockerd left mounted under its folder, remove the folder and its cgroups."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(ROOT))), key=len, reverse=True):
        _run("umount", "-l", mount, check=False)
    shutil.rmtree(ROOT, ignore_errors=True)
    if ROOT.exists():
        raise RuntimeError(f"{ROOT} could not be removed")
    for controller in Path("/sys/fs/cgroup").iterdir():
        group = controller / CGROUP_PARENT.strip("/")
        if group.is_dir():
            for sub in sorted(group.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                group.rmdir()


def clean_stale() -> None:
    """Remove what a killed earlier rig left (its dockerd, namespace, veth, folder), by the rig's
    fixed names only. The manager's swarm is not touched: whether to leave it is not knowable now."""
    _stop_dockerd()
    for pid, _ in _rig_processes(ROOT):  # a registry still listening on the rig's address
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _remove_netns()
    certs_d = Path("/etc/docker/certs.d")
    with contextlib.suppress(OSError):
        shutil.rmtree(certs_d / f"{HOST_ADDR}:{REGISTRY_PORT}")
        certs_d.rmdir()  # only when empty
    if ROOT.exists():
        _remove_root()
