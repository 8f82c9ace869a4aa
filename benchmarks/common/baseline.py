"""Docker helpers for the bare-Docker baselines: the images, subnets, networks and host configs
comparable to cronium's, and removing what a baseline created."""
from __future__ import annotations

import ipaddress
import random
import threading

from .context import Context

PYTHON_IMAGE = "cronium/python:latest"
SIDECAR_IMAGE = "cronium/sidecar:latest"
REDIS_IMAGE = "cronium/redis:latest"
#: Bare-Docker baseline networks take /28 subnets out of this pool (cronium's default pool is
#: 10.213.0.0/16; this one is next to it so the two never compete for addresses).
BENCH_POOL = "10.214.0.0/16"


class SubnetPicker:
    """Distinct /28 subnets out of BENCH_POOL for baseline networks (shuffled, thread-safe)."""

    def __init__(self, pool: str = BENCH_POOL, prefix: int = 28):
        net = ipaddress.ip_network(pool)
        self._size = 2 ** (32 - prefix)
        self._base = int(net.network_address)
        self._prefix = prefix
        self._order = list(range(2 ** (prefix - net.prefixlen)))
        random.shuffle(self._order)
        self._i = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            i = self._order[self._i % len(self._order)]
            self._i += 1
        return f"{ipaddress.ip_address(self._base + i * self._size)}/{self._prefix}"


def create_bench_network(ctx: Context, name: str, picker: SubnetPicker, *, internal: bool = True) -> str:
    """An internal bridge network with an explicit small subnet, like cronium's per-job network."""
    from docker.errors import APIError
    from docker.types import IPAMConfig, IPAMPool

    api = ctx.docker.api
    for _ in range(32):
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=picker.next())])
        try:
            return api.create_network(name, driver="bridge", internal=internal, ipam=ipam, labels=ctx.labels,
                                      check_duplicate=True)["Id"]
        except APIError as exc:
            if "overlap" in str(exc).lower():
                continue
            raise
    raise RuntimeError(f"no free subnet for {name} in {BENCH_POOL}")


def job_host_config(api, *, network: str | None = None, memory: str = "256m", cpus: float = 1.0,
                    pids: int = 256, work_tmpfs: bool = True, log_type: str | None = None, **extra):
    """A HostConfig comparable to cronium's default profile (read-only root, cap-drop ALL,
    no-new-privileges, memory/CPU/pids limits, tmpfs /tmp and /work)."""
    tmpfs = {"/tmp": "rw,nosuid,nodev,size=64m,mode=1777"}
    if work_tmpfs:
        tmpfs["/work"] = "rw,nosuid,nodev,size=64m,uid=10001,gid=10001,mode=0700"
    kwargs = dict(read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges:true"], mem_limit=memory,
                  memswap_limit=memory, nano_cpus=int(cpus * 1e9), pids_limit=pids, tmpfs=tmpfs)
    if network:
        kwargs["network_mode"] = network
    if log_type:
        kwargs["log_config"] = {"type": log_type, "config": {}}
    kwargs.update(extra)
    return api.create_host_config(**kwargs)


def force_remove_container(api, container_id: str) -> None:
    from docker.errors import NotFound

    try:
        api.remove_container(container_id, force=True, v=True)
    except NotFound:
        pass


def remove_network(api, network_id: str) -> None:
    from docker.errors import NotFound

    try:
        api.remove_network(network_id)
    except NotFound:
        pass
