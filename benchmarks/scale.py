"""5. Scale: N (200) concurrent sleeping jobs through one Orchestrator — do all of them start, what does a
job cost in memory, how big is a sidecar — against N bare sleeping containers of the same image.

- cronium: N threads call `Orchestrator.run` at once; every job prints `started` and sleeps (it exits
  cleanly on SIGTERM). Counted: jobs that reached the `job` phase (events callback) and jobs whose
  `started` line arrived (a log sink). Once all have started (or the cap passed) memory is measured,
  then every job is cancelled and cleaned up, and nothing of this run may remain.
- baseline: N containers of the same image running the same script (`docker run -d` equivalent via
  the SDK, 8 creates at a time), measured the same way, then removed. Runs first.

Memory per job = (host MemTotal − MemAvailable during − before) / jobs running: it includes every
process a job costs on the host (containerd shims, sidecar, job, kernel objects). Per-container
memory and the sidecars' RSS come from each container's memory cgroup (`memory.usage_in_bytes` and
the `rss` of `memory.stat`; `docker stats` when the cgroup cannot be read).
"""
from __future__ import annotations

import threading
import time
from typing import Any

from .common.api_calls import ApiCallCounter, describe
from .common.baseline import PYTHON_IMAGE, force_remove_container, job_host_config
from .common.commands import run_threads
from .common.context import Context
from .common.machine import host_memory_used
from .common.memory import MB, cgroup_memory, docker_stats_memory, process_memory
from .common.orchestrator import close_orchestrator, make_orchestrator, python_spec
from .common.stats import now, summarize
from .common.table import Row, fmt_spread, log, print_rows

NAME = "scale"
TARGET_SIDECAR_RSS_MB = 40.0
SLEEP = 3600
SCRIPT = f"""import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("started", flush=True)
time.sleep({SLEEP})
"""


def _container_memory(api, containers: list[dict]) -> dict[str, list[dict[str, Any]]]:
    """role -> [{"name", "usage", "rss"}] from the memory cgroups (docker stats as a fallback)."""
    out: dict[str, list[dict[str, Any]]] = {}
    missing = []
    for c in containers:
        role = c["Labels"].get("cronium.role", "bare")
        mem = cgroup_memory(c["Id"])
        name = c["Names"][0].lstrip("/")
        if mem is None:
            missing.append((role, name))
            continue
        out.setdefault(role, []).append({"name": name, **mem, "source": "cgroup"})
    if missing:
        stats = docker_stats_memory([n for _, n in missing])
        for role, name in missing:
            if name in stats:
                out.setdefault(role, []).append({"name": name, "usage": stats[name], "rss": None,
                                                 "source": "docker stats"})
    return out


def _mem_summary(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(items),
            "usage_mb": summarize([i["usage"] / MB for i in items]),
            "rss_mb": summarize([i["rss"] / MB for i in items if i.get("rss") is not None])}


def _settle_memory(seconds: float = 3.0) -> int:
    time.sleep(seconds)
    return host_memory_used()


def _bare(ctx: Context, n: int, cap: float) -> dict[str, Any]:
    api = ctx.docker.api
    ids: list[str] = []
    lock = threading.Lock()
    before = _settle_memory(2)
    t0 = now()
    try:
        def start(i: int) -> str:
            cid = api.create_container(PYTHON_IMAGE, ["python3", "-c", SCRIPT], user="10001:10001",
                                       working_dir="/work", name=f"cronium-bench-{ctx.run_id}-sleep-{i}",
                                       labels=ctx.labels, host_config=job_host_config(api))["Id"]
            with lock:
                ids.append(cid)
            api.start(cid)
            return cid

        results = run_threads(start, n, 8)
        errors = [repr(r)[:300] for r in results if not isinstance(r, str)]
        started: set[str] = set()
        deadline = time.monotonic() + cap
        while len(started) < len(ids) - 0 and time.monotonic() < deadline:
            for cid in ids:
                if cid not in started and b"started" in api.logs(cid, tail=2):
                    started.add(cid)
            if len(started) < len(ids):
                time.sleep(0.5)
        all_started = now() - t0
        during = _settle_memory(3)
        mem = _container_memory(api, api.containers(filters={"label": f"cronium.bench={ctx.run_id}"}))
    finally:
        t1 = now()
        run_threads(lambda i: force_remove_container(api, ids[i]), len(ids), 8)
        removal = now() - t1
    return {"jobs": n, "started": len(started), "errors": errors, "time_to_all_started": all_started,
            "removal_seconds": removal, "host_mem_before": before, "host_mem_during": during,
            "per_job_host_mb": (during - before) / MB / max(1, len(started)),
            "containers": {role: _mem_summary(items) for role, items in mem.items()}}


def _wait_for_starts(n: int, cap: float, t0: float, printed, reached_job: dict, results: dict,
                     timeline: list) -> None:
    """Until every job printed `started` (or ended), or `cap` seconds passed; logs every 15 s."""
    deadline = time.monotonic() + cap
    last_log = 0.0
    while time.monotonic() < deadline:
        p, j, done = printed(), len(reached_job), len(results)
        timeline.append((round(now() - t0, 2), j, p))
        if p + done >= n:
            break
        if now() - last_log > 15:
            log(f"{now() - t0:.0f} s: {j} reached the job phase, {p} printed 'started', {done} ended early")
            last_log = now()
        time.sleep(0.5)


def _memory_while_running(rt, before: int, started_count: int) -> dict[str, Any]:
    """Host memory per job and the memory of this runtime's containers, by role."""
    during = _settle_memory(3)
    mem = _container_memory(rt.docker.api, rt.docker.api.containers(
        filters={"label": f"cronium.owner={rt.owner}"}))
    return {"host_mem_before": before, "host_mem_during": during, "host_processes": process_memory(),
            "per_job_host_mb": (during - before) / MB / max(1, started_count),
            "containers": {role: _mem_summary(items) for role, items in mem.items()},
            "sidecar_rss_mb_all": sorted(round(i["rss"] / MB, 1) for i in mem.get("sidecar", [])
                                         if i.get("rss") is not None)}


def _outcome(results: dict[int, Any]) -> tuple[dict, dict[str, int], list[str], dict[str, Any]]:
    """(jobs that ended other than cancelled, final status counts, distinct errors, phase summaries)."""
    early = {i: (r.status if not isinstance(r, BaseException) else repr(r)) for i, r in results.items()
             if isinstance(r, BaseException) or r.status != "cancelled"}
    statuses: dict[str, int] = {}
    for r in results.values():
        key = r.status if not isinstance(r, BaseException) else type(r).__name__
        statuses[key] = statuses.get(key, 0) + 1
    errors = sorted({(r.error or "")[:200] for r in results.values() if not isinstance(r, BaseException) and r.error
                     and r.status not in ("cancelled",)})
    ok = [r for r in results.values() if not isinstance(r, BaseException)]
    phase_names = []
    for r in ok:
        for k in r.timings:
            if k not in phase_names:
                phase_names.append(k)
    phases = {k: summarize([r.timings.get(k) for r in ok]) for k in phase_names}
    return early, statuses, errors, phases


def _cronium(ctx: Context, n: int, cap: float) -> dict[str, Any]:
    rt, orch, capture = make_orchestrator(ctx)
    from cronium.core.lifecycle import Cancellation

    cancels = [Cancellation() for _ in range(n)]
    reached_job: dict[int, float] = {}
    results: dict[int, Any] = {}
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    timeline: list[tuple[float, int, int]] = []
    before = _settle_memory(2)
    t0 = now()

    def job(i: int) -> None:
        def events(phase: str, state: str) -> None:
            if phase == "job" and state == "start":
                with lock:
                    reached_job[i] = now() - t0
        try:
            r = orch.run(python_spec(SCRIPT, name="sleeper.py", timeout=SLEEP + 600), events=events,
                         cancel=cancels[i])
            ctx.note_exec(r.execution_id)
            results[i] = r
        except BaseException as exc:  # noqa: BLE001
            results[i] = exc

    def printed() -> int:
        with capture._lock:
            return sum(1 for s in capture.sinks.values() if s.first_at is not None)

    memory: dict[str, Any] = {}
    counter = ApiCallCounter(rt.docker.api)
    calls: dict[str, Any] = {}
    capped, started_count, all_started, still_running = False, 0, float("nan"), 0
    try:
        warm = orch.run(python_spec("print('warm-up')\n", name="warmup.py"))  # the runtime's one-time start-up
        ctx.note_exec(warm.execution_id)
        capture.pop(warm.execution_id)
        counter.__enter__()
        t0 = now()
        for i in range(n):
            t = threading.Thread(target=job, args=(i,), name=f"scale-{i}", daemon=True)
            t.start()
            threads.append(t)
        _wait_for_starts(n, cap, t0, printed, reached_job, results, timeline)
        all_started = now() - t0
        started_count = printed()
        capped = started_count + len(results) < n
        log(f"{all_started:.1f} s: {len(reached_job)}/{n} reached the job phase, {started_count}/{n} printed 'started'"
            + (f", {len(results)} ended early (failed)" if results else "")
            + (f" — CAPPED at {cap:.0f} s" if capped else ""))
        calls["until_all_started"] = counter.per_job(n)
        counter.reset()
        memory = _memory_while_running(rt, before, started_count)
        still_running = sum(1 for i in range(n) if i not in results)
        calls["while_running"] = counter.per_job(n)
        counter.reset()
    finally:
        t1 = now()
        for c in cancels:
            c.cancel("benchmark finished")
        for t in threads:
            t.join(300)
        cleanup = now() - t1
        counter.__exit__(None, None, None)
        calls["cancel_and_cleanup"] = counter.per_job(n)
        close_orchestrator(rt, orch)
    early, statuses, errors, phases = _outcome(results)
    return {"jobs": n, "reached_job_phase": len(reached_job), "phases": phases, "capped": capped, "started": started_count,
            "running_when_measured": still_running, "time_to_all_started": all_started,
            "job_phase_reached_at": summarize(list(reached_job.values())), "cleanup_seconds": cleanup,
            "final_statuses": statuses, "ended_early": early, "errors": errors, "timeline": timeline[::4],
            "engine_calls_per_job": calls, **memory}


def run(ctx: Context) -> dict[str, Any]:
    n, cap = (20, 120) if ctx.quick else (200, 420)
    log(f"baseline: {n} bare sleeping containers of {PYTHON_IMAGE}")
    bare = _bare(ctx, n, cap)
    log(f"  all {bare['started']}/{n} started in {bare['time_to_all_started']:.1f} s; "
        f"{bare['per_job_host_mb']:.1f} MB host memory per container; removed in {bare['removal_seconds']:.1f} s")
    log(f"cronium: {n} concurrent sleeping jobs through one Orchestrator (cap {cap} s to start)")
    cron = _cronium(ctx, n, cap)
    log("  cronium phases (median / max): " + ", ".join(
        f"{k} {v['median']:.2f}/{v['max']:.2f}s" for k, v in cron["phases"].items() if v.get("n")))
    log(f"  cleanup of {n} jobs after cancel: {cron['cleanup_seconds']:.1f} s; final statuses {cron['final_statuses']}")
    log("  host processes (per process, RSS / PSS): " + ", ".join(
        f"{k} ×{v['count']} {v['rss_mb']:.1f}/{v['pss_mb']:.1f} MB" for k, v in cron.get("host_processes", {}).items()))
    for stage, per_job in cron["engine_calls_per_job"].items():
        log(f"  {stage.replace('_', ' ')}: " + describe(per_job, limit=8))
    from .common.cleanup import leftovers, ours

    left = ours(ctx, leftovers(ctx.docker))
    cron["leftovers_after_cleanup"] = [f"{i['kind']} {i['name']}" for i in left]
    if left:
        kinds: dict[str, int] = {}
        for i in left:
            kinds[i["kind"]] = kinds.get(i["kind"], 0) + 1
        log(f"  LEFT BEHIND by cronium after every job ended: {kinds} (the harness sweep removes them)")

    rows = [Row(NAME, f"jobs started of {n} (printed their first line)", "", bare["started"], cron["started"], None,
                f"{n}", cron["started"] >= n),
            Row(NAME, "time until all started", "s", bare["time_to_all_started"], cron["time_to_all_started"],
                cron["time_to_all_started"] / bare["time_to_all_started"], "–", None),
            Row(NAME, "host memory per job (Δ used / jobs)", "MB", bare["per_job_host_mb"], cron.get("per_job_host_mb"),
                (cron.get("per_job_host_mb") or 0) / bare["per_job_host_mb"] if bare["per_job_host_mb"] > 0 else None,
                "–", None)]
    job_c = cron.get("containers", {}).get("job", {})
    bare_c = bare["containers"].get("bare", {})
    if job_c and bare_c:
        rows.append(Row(NAME, "job container memory (cgroup usage, median)", "MB", bare_c["usage_mb"].get("median"),
                        job_c["usage_mb"].get("median"), None, "–", None,
                        fmt_spread(bare_c["usage_mb"], "MB"), fmt_spread(job_c["usage_mb"], "MB")))
    side = cron.get("containers", {}).get("sidecar", {})
    if side:
        rss = side["rss_mb"]
        rows.append(Row(NAME, "sidecar RSS (cgroup rss; median, p10–p90)", "MB", None, rss.get("median"), None,
                        f"≤ {TARGET_SIDECAR_RSS_MB:.0f} MB", (rss.get("max") or 1e9) <= TARGET_SIDECAR_RSS_MB
                        if rss.get("n") else None, "–", fmt_spread(rss, "MB") + f", max {rss.get('max', 0):.1f}"))
        rows.append(Row(NAME, "sidecar memory (cgroup usage incl. page cache)", "MB", None,
                        side["usage_mb"].get("median"), None, "–", None, "–", fmt_spread(side["usage_mb"], "MB")))
    rows.append(Row(NAME, "cleanup after cancel (all jobs)", "s", bare["removal_seconds"], cron["cleanup_seconds"],
                    cron["cleanup_seconds"] / bare["removal_seconds"] if bare["removal_seconds"] else None, "–", None))
    rows.append(Row(NAME, "objects cronium left after all jobs ended", "", 0, len(left), None, "0", not left))
    if cron["errors"]:
        rows.append(Row(NAME, f"failed jobs: {cron['errors'][0][:60]}", "", len(bare["errors"]),
                        sum(v for k, v in cron["final_statuses"].items() if k != "cancelled"), None, "0", False))
    print_rows(rows, "scale")
    return {"rows": rows,
            "params": {"jobs": n, "start_cap_seconds": cap, "script": SCRIPT},
            "details": {"cronium": cron, "bare": bare},
            "notes": ["the sidecar RSS target is checked against the largest sidecar (max), the median is shown",
                      "host memory per job includes containerd shims (2 per cronium job, 1 per bare container)"]}
