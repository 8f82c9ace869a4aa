"""CPU time spent during a batch, by process: where the work of a job goes on this host.

`CpuMeter().snapshot()` reads, in CPU seconds since boot:

- `host`: every CPU's busy time (`/proc/stat`: user + nice + system + irq + softirq; no idle,
  iowait or steal);
- `dockerd`, `containerd`: `/proc/<pid>/stat` utime + stime + the children it waited for
  (`iptables`, `runc` run by the daemon itself);
- `shims`: the `containerd-shim*` processes alive at the snapshot (a shim that exits between two
  snapshots takes its CPU with it: it falls into `other`);
- `bench`: this process (every thread: the orchestrator's, or the SDK calls of a baseline);
- `containers`: the cgroup-v1 `cpuacct.usage` of Docker's parent cgroup (hierarchical: a removed
  container's usage stays counted), less the managed Redis' own, which is `redis`;
- `foreign`: every other process alive at both snapshots and outside Docker's cgroups (other
  sessions' test runs, editors, …): not this benchmark's work;
- `other`: `host` less all of the above (exited shims, `runc` and the engine's hooks, the
  kernel's work for namespaces and networks, processes that started and ended in between).

`per_job(before, after, jobs)` gives the differences divided by the number of jobs, and `work` =
`host` less `foreign`: the CPU the batch cost (on a quiet machine, `host`). Reads files
only (no engine call); a figure the machine does not offer is left out.
"""
from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpuacct/docker"), Path("/sys/fs/cgroup/cpu,cpuacct/docker"))
REDIS_CONTAINER = "cronium-redis"


def _proc_seconds(pid: int | str, children: bool = True) -> float:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3): utime is field 14, stime 15, cutime 16, cstime 17
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / _TICK


def _processes() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {"dockerd": [], "containerd": [], "shims": [], "rest": []}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "dockerd":
            found["dockerd"].append(int(entry.name))
        elif comm == "containerd":
            found["containerd"].append(int(entry.name))
        elif comm.startswith("containerd-shim"):
            found["shims"].append(int(entry.name))
        elif int(entry.name) != me:
            found["rest"].append(int(entry.name))
    return found


def _foreign(pids: list[int]) -> dict[str, float]:
    """`pid:start time` -> CPU seconds of the processes outside Docker's cgroups."""
    out = {}
    for pid in pids:
        try:
            if "/docker/" in Path(f"/proc/{pid}/cgroup").read_text():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[f"{pid}:{fields[19]}"] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def _host_busy() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / _TICK


def _cgroup_seconds(sub: str = "") -> float | None:
    for root in _CGROUP_ROOTS:
        path = root / sub / "cpuacct.usage" if sub else root / "cpuacct.usage"
        try:
            return int(path.read_text()) / 1e9
        except (OSError, ValueError):
            continue
    return None


def container_seconds(container_id: str) -> float | None:
    """CPU seconds a running container has used so far (its cgroup-v1 `cpuacct.usage`), None when
    the machine has no such cgroup (another driver, cgroup v2, or the container has stopped)."""
    return _cgroup_seconds(container_id)


class CpuMeter:
    """Snapshots of CPU seconds by process (see the module docstring)."""

    def __init__(self, docker_api=None):
        self._redis_id = None
        if docker_api is not None:
            try:
                self._redis_id = docker_api.inspect_container(REDIS_CONTAINER)["Id"]
            except Exception:
                self._redis_id = None

    def snapshot(self) -> dict:
        procs = _processes()
        out = {"host": _host_busy(), "bench": _proc_seconds("self", children=False)}
        for name in ("dockerd", "containerd"):
            out[name] = sum(_proc_seconds(p) for p in procs[name])
        out["shims"] = sum(_proc_seconds(p) for p in procs["shims"])
        out["foreign"] = _foreign(procs["rest"])  # a map: `per_job` sums the processes in both
        docker_total = _cgroup_seconds()
        redis = _cgroup_seconds(self._redis_id) if self._redis_id else None
        if docker_total is not None:
            out["redis"] = redis or 0.0
            out["containers"] = docker_total - (redis or 0.0)
        return out


def per_job(before: dict, after: dict, jobs: int) -> dict[str, float]:
    """CPU seconds per job by process over a batch, with `other` = host less the rest. A shim
    alive at `before` that exited by `after` counts negative in `shims`: it is clamped to 0
    and the remainder lands in `other`."""
    jobs = max(1, jobs)
    diff = {k: after[k] - before.get(k, 0.0) for k in after if k != "foreign"}
    old = before.get("foreign", {})
    diff["foreign"] = sum(v - old[k] for k, v in after.get("foreign", {}).items() if k in old)
    diff["shims"] = max(0.0, diff.get("shims", 0.0))
    diff["other"] = diff["host"] - sum(v for k, v in diff.items() if k != "host")
    diff["work"] = diff["host"] - diff["foreign"]
    return {k: round(v / jobs, 3) for k, v in diff.items()}


def describe(cpu: dict[str, float]) -> str:
    order = ("work", "host", "containers", "dockerd", "containerd", "shims", "bench", "redis", "other", "foreign")
    return "CPU s per job: " + ", ".join(f"{k} {cpu[k]:.3f}" for k in order if k in cpu)
