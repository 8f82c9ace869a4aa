"""What an executor plugin returns from `start_job`, how container options are merged, and which
plugins take part in an execution.

Executors: a plugin module that sets `EXECUTOR = "<name>"` belongs to that executor (the built-in
`network`, `sidecar` and `docker_executor` to "docker"; `swarm_network`, `swarm_sidecar` and
`swarm_executor` to "swarm"). `hooks_for_executor(hooks, name)` is the hooks of one execution: pluggy's
`subset_hook_caller` without the plugins of every other executor, so exactly one executor's
providers answer and observe, and plugins that declare no executor (token, security, logs, third
party) take part in every run. Reaping (`reap_orphans`) goes to every plugin.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence

from .errors import SecurityNotApplied, UsageError
from .model import ContainerOptions
from .plugins import CroniumPluginManager, Hooks

#: The module attribute naming the executor a plugin belongs to (see the module docstring).
EXECUTOR_ATTRIBUTE = "EXECUTOR"


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int | None
    oom_killed: bool = False
    error: str | None = None  # the engine's own error for the container, if any
    #: Peak figures of the job container when the executor measured them (kept on the record as
    #: `memory_peak`, bytes, and `cpu_seconds`); None when it did not.
    memory_peak: int | None = None
    cpu_seconds: float | None = None


class JobHandle(Protocol):
    """A prepared job: created and attached, not yet started (what `start_job` returns).

    Starting happens in two steps so that the container's start-up overlaps the sidecar's boot
    while no job code runs before the sidecar is ready: the core calls `start()` right after
    `start_job`, while the sidecar still boots — the container starts and waits for its secrets and
    script; once the sidecar is ready and the log reader reads `chunks()`, `release()` delivers them
    and the job's own code begins. Then `stop()` on timeout or cancel, and `exit_status()` once
    the output has ended. `cronium.core.testing.ExecutorConformance` tests an implementation."""

    container_id: str

    def start(self) -> None:
        """Start the container; it runs nothing of the job's until `release()`."""

    def release(self) -> None:
        """Deliver the secret env and the script: the job's code starts now (its timeout too)."""

    def chunks(self) -> Iterator[tuple[int, bytes | None]]:
        """Raw output in arrival order: (1 = stdout | 2 = stderr, bytes). A `(0, None)` item means
        "nothing more right now" (the reader flushes its batches). Read from before `release()`,
        so nothing is missed. Ends when the job's output closes (the job exited or was stopped)."""

    def exit_status(self) -> ExitStatus:
        """Once output has ended: the exit code and whether the kernel OOM-killed the job."""

    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds. May be called more than once."""


#: Security settings the core requires in the merged options of every container, with a check.
REQUIRED_SETTINGS = {
    "non-root user": lambda o: bool(o.user) and o.user.split(":")[0] not in ("0", "root"),
    "read-only root filesystem": lambda o: o.host_config.get("ReadonlyRootfs") is True,
    "cap-drop ALL": lambda o: "ALL" in (o.host_config.get("CapDrop") or []),
    "no-new-privileges": lambda o: any(s.startswith("no-new-privileges") for s in o.host_config.get("SecurityOpt") or []),
    "memory limit": lambda o: (o.host_config.get("Memory") or 0) > 0,
    "swap limit": lambda o: (o.host_config.get("MemorySwap") or 0) >= (o.host_config.get("Memory") or 1),
    "pids limit": lambda o: (o.host_config.get("PidsLimit") or 0) > 0,
    "CPU limit": lambda o: (o.host_config.get("NanoCpus") or 0) > 0,
}

_LIST_KEYS = {"CapDrop", "CapAdd", "SecurityOpt", "Mounts", "Ulimits", "DnsOptions"}
_DICT_KEYS = {"Tmpfs", "Sysctls"}


def merge_options(contributions: Sequence[ContainerOptions]) -> ContainerOptions:
    """Merge contributions in order: later scalar HostConfig keys win, list keys concatenate
    (de-duplicated), dict keys merge; env and labels merge; the last user/working_dir wins."""
    host: dict[str, Any] = {}
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    user = working_dir = None
    applied: list[str] = []
    for c in contributions:
        for key, value in c.host_config.items():
            if key in _LIST_KEYS:
                merged = list(host.get(key, []))
                merged += [v for v in value if v not in merged]
                host[key] = merged
            elif key in _DICT_KEYS:
                host[key] = {**host.get(key, {}), **value}
            else:
                host[key] = value
        env.update(c.env)
        labels.update(c.labels)
        user = c.user or user
        working_dir = c.working_dir or working_dir
        applied += [a for a in c.applied if a not in applied]
    return ContainerOptions(host_config=host, env=env, labels=labels, user=user, working_dir=working_dir,
                            applied=tuple(applied), source="merged")


def require_security(options: ContainerOptions, role: str) -> None:
    """Refuse to start a container whose merged options miss a required security setting."""
    for setting, present in REQUIRED_SETTINGS.items():
        if not present(options):
            raise SecurityNotApplied(f"{setting} on the {role} container",
                                     "no enabled plugin supplied it (is the 'security' plugin disabled?)")


def check_engine_warnings(warnings: Sequence[str] | None, role: str) -> None:
    """The engine may accept a container but discard a limit (e.g. no pids cgroup): refuse."""
    for warning in warnings or []:
        low = warning.lower()
        if "discard" in low or "not support" in low or "limitation" in low:
            raise SecurityNotApplied(f"a limit on the {role} container", f"the Docker engine said: {warning}")


def executor_plugins(pm: CroniumPluginManager) -> dict[str, list[object]]:
    """Executor name -> the registered plugins that belong to it (their `EXECUTOR` attribute)."""
    out: dict[str, list[object]] = {}
    for _, plugin in pm.list_name_plugin():
        executor = getattr(plugin, EXECUTOR_ATTRIBUTE, None)
        if isinstance(executor, str):
            out.setdefault(executor, []).append(plugin)
    return out


def hooks_for_executor(hooks: "Hooks", name: str) -> "Hooks":
    """The hooks of one execution run by executor `name`: without the plugins of every other
    executor (see the module docstring). An executor no enabled plugin declares is a `UsageError`
    naming the installed ones."""
    declared = executor_plugins(hooks.pm)
    if name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise UsageError(f"unknown executor {name!r} (installed executors: {known})",
                         hint="install or enable its plugins (`cronium plugins`), or choose one of those")
    others = tuple(plugin for executor, plugins in declared.items() if executor != name for plugin in plugins)
    return Hooks(hooks.pm, without=others)
