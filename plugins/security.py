"""Built-in plugin `security`: the security profile of every container.

Profiles live in config (`[profiles.<name>]`; `default` and `strict` ship). A profile gives a
non-root user, a read-only root filesystem with tmpfs for /tmp (and /work for jobs), cap-drop ALL,
no-new-privileges, memory + swap, CPU and pids limits, and a seccomp profile: Docker's default, a
built-in one shipped with cronium, or a JSON file whose *content* is sent to the engine (the API
does not take a path). Job requests are already clamped to `limits.*`; a job that sets only CPU
still gets the profile's memory and pids limits. The sidecar gets the same hardening with the
`sidecar.*` limits. Every setting is listed in `ContainerOptions.applied`; the core refuses to start
a container whose merged options miss one, and a seccomp profile that cannot be read or an engine
without seccomp support fails the job instead of running it unconfined.
"""
from __future__ import annotations

import json
import threading
from importlib import resources
from pathlib import Path

from cronium.core import hookimpl
from cronium.core.config import parse_size
from cronium.core.errors import SecurityNotApplied
from cronium.core.model import ContainerOptions

NOFILE = 4096
_seccomp_cache: dict[str, str] = {}
_engine_seccomp: dict[int, bool] = {}
_lock = threading.Lock()


def load_seccomp(setting: str) -> str | None:
    """The JSON text to send for a profile's `seccomp` setting (None = Docker's default)."""
    if setting == "default":
        return None
    with _lock:
        if setting in _seccomp_cache:
            return _seccomp_cache[setting]
    try:
        if setting.startswith("builtin:"):
            text = resources.files("cronium.config").joinpath("seccomp", setting.split(":", 1)[1] + ".json").read_text()
        else:
            text = Path(setting).expanduser().read_text()
        parsed = json.loads(text)
    except (OSError, ValueError) as exc:
        raise SecurityNotApplied(f"seccomp profile {setting!r}", f"{type(exc).__name__}: {exc}") from None
    if not isinstance(parsed, dict) or "defaultAction" not in parsed:
        raise SecurityNotApplied(f"seccomp profile {setting!r}", "not a seccomp profile (no defaultAction)")
    compact = json.dumps(parsed, separators=(",", ":"))
    with _lock:
        _seccomp_cache[setting] = compact
    return compact


def engine_supports_seccomp(client) -> bool:
    key = id(client)
    with _lock:
        if key in _engine_seccomp:
            return _engine_seccomp[key]
    options = client.info().get("SecurityOptions") or []
    ok = any("seccomp" in o for o in options)
    with _lock:
        _engine_seccomp[key] = ok
    return ok


def build_options(*, user: str, memory: int, swap: int, cpus: float, pids: int, tmpfs: dict[str, str],
                  seccomp: str | None, working_dir: str | None, env: dict[str, str]) -> ContainerOptions:
    security_opt = ["no-new-privileges:true"]
    applied = ["non-root user", "read-only root filesystem", "cap-drop ALL", "no-new-privileges",
               "memory limit", "swap limit", "pids limit", "CPU limit"]
    if seccomp is not None:
        security_opt.append(f"seccomp={seccomp}")
        applied.append("seccomp profile")
    else:
        applied.append("seccomp (engine default)")
    host_config = {
        "ReadonlyRootfs": True,
        "CapDrop": ["ALL"],
        "SecurityOpt": security_opt,
        "Memory": memory,
        "MemorySwap": memory + swap,
        "NanoCpus": int(cpus * 1e9),
        "PidsLimit": pids,
        "Tmpfs": tmpfs,
        "Ulimits": [{"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE}],
        "Privileged": False,
    }
    return ContainerOptions(host_config=host_config, env=env, user=user, working_dir=working_dir,
                            applied=tuple(applied), source="security")


@hookimpl(trylast=True)
def container_options(execution, role, runtime):
    cfg = runtime.config
    profile = cfg.profile(execution.profile)
    seccomp = load_seccomp(profile["seccomp"])
    if seccomp is None and not engine_supports_seccomp(runtime.docker):
        raise SecurityNotApplied("Docker's default seccomp profile", "the engine reports no seccomp support")
    uid, _, gid = profile["user"].partition(":")
    gid = gid or uid
    tmpfs_size = parse_size(profile["tmpfs_size"])
    if role == "sidecar":
        return build_options(
            user=profile["user"], memory=parse_size(cfg["sidecar.memory"]), swap=0, cpus=cfg["sidecar.cpus"],
            pids=cfg["sidecar.pids"], tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={8 * 1024 * 1024},mode=1777"},
            seccomp=seccomp, working_dir=None, env={})
    r = execution.resources
    return build_options(
        user=profile["user"], memory=r.memory, swap=parse_size(profile["swap"]), cpus=r.cpus, pids=r.pids,
        tmpfs={
            "/tmp": f"rw,nosuid,nodev,size={tmpfs_size},mode=1777",
            "/work": f"rw,nosuid,nodev,size={tmpfs_size},uid={uid},gid={gid},mode=0700",
        },
        seccomp=seccomp, working_dir="/work", env={"HOME": "/work"})
