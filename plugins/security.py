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

With `security.per_execution_uid`, each execution attempt's job runs as a uid (and gid) of its own
from `security.uid_range`, claimed in the store (`store.uids`) when its options are made, released
at `cleanup`; `reap_orphans` releases the claims of crashed owners. The job's /work tmpfs belongs
to that uid. The search for a free uid goes round the range from a cursor, so a freed uid is
handed out again only after the rest of the range.
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
from cronium.core.values import uid_range

NOFILE = 4096
#: A uid claim outlives its execution's timeout by this much (the owner or the reaper frees it sooner).
UID_CLAIM_MARGIN = 86400.0
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
    tmpfs_size = parse_size(profile["tmpfs_size"])
    if role == "sidecar":
        return build_options(
            user=profile["user"], memory=parse_size(cfg["sidecar.memory"]), swap=0, cpus=cfg["sidecar.cpus"],
            pids=cfg["sidecar.pids"], tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={8 * 1024 * 1024},mode=1777"},
            seccomp=seccomp, working_dir=None, env={})
    user = _job_user(execution, runtime) or profile["user"]
    uid, _, gid = user.partition(":")
    gid = gid or uid
    r = execution.resources
    return build_options(
        user=user, memory=r.memory, swap=parse_size(profile["swap"]), cpus=r.cpus, pids=r.pids,
        tmpfs={
            "/tmp": f"rw,nosuid,nodev,size={tmpfs_size},mode=1777",
            "/work": f"rw,nosuid,nodev,size={tmpfs_size},uid={uid},gid={gid},mode=0700",
        },
        seccomp=seccomp, working_dir="/work", env={"HOME": "/work"})


def _uid_claim(execution) -> str:
    return f"{execution.execution_id}.{execution.attempt_tag}"


def _job_user(execution, runtime) -> str | None:
    """`uid:gid` of the execution's own uid when `security.per_execution_uid` is on (claimed here,
    or the one this attempt already holds), else None."""
    if not runtime.config["security.per_execution_uid"]:
        return None
    low, high = uid_range(runtime.config["security.uid_range"])
    info = {"execution": execution.execution_id, "owner": execution.owner, "deadline": execution.deadline}
    uid = runtime.store.uids.claim(_uid_claim(execution), low=low, high=high, info=info,
                                   ttl=execution.timeout + UID_CLAIM_MARGIN)
    return f"{uid}:{uid}"


@hookimpl(trylast=True)
def cleanup(execution, result, runtime):
    """Free the execution's uid (when it holds one; the job container is gone by now)."""
    if runtime.config["security.per_execution_uid"]:
        runtime.store.uids.release(_uid_claim(execution))


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Uid claims whose owner died (or whose execution the judgement selects). Only while
    `security.per_execution_uid` is on: claims left from before it was turned off expire by TTL."""
    if not runtime.config["security.per_execution_uid"]:
        return
    for claim in runtime.store.uids.claims():
        what = f"uid-claim {claim['uid']} ({claim.get('execution', '?')})"
        labels = {"cronium.execution": str(claim.get("execution", "")), "cronium.owner": str(claim.get("owner", "")),
                  "cronium.deadline": str(claim.get("deadline", ""))}
        if not judge.verdict(labels):
            report.kept.append(what)
            continue
        if not dry_run and not runtime.store.uids.release(claim["claim"], claim["uid"]):
            continue  # released meanwhile by its owner
        report.removed.append(what)
