"""2. Throughput: N trivial jobs (`print('hi')`) at concurrency 8 — threads over one `Orchestrator` —
against a bare-Docker equivalent of the same work, also 8 at a time with the Docker SDK.

Bare equivalent, per job: an internal bridge network with a /28 subnet (like cronium's), a
"sidecar" from the sidecar image running `python3 -m http.server 8081` with the network alias
`runtime-api`, and the job container (`python3 -c "print('hi')"`), both with a host config
comparable to cronium's profile (read-only root, cap-drop ALL, no-new-privileges, memory/CPU/pids
limits, tmpfs); created, started, the job waited and its logs read, then both containers removed
(at the same time, as cronium does) and the network removed. The bare sidecar's readiness is not
awaited (nothing in the bare job uses it).

A second baseline, `docker run --rm`: the same job as plain `docker run --rm cronium/python python3 -c
…` commands through the docker CLI, 8 at a time (no network of its own, no sidecar, no limits).

jobs/s = successful jobs / wall time of the batch. Batches are interleaved (cronium, bare,
docker run, then the reverse order, …); each ratio is the median of the per-pair ratios.
"""
from __future__ import annotations

import threading
from typing import Any

from cronium.core import hookimpl

from .common.api_calls import ApiCallCounter, describe
from .common.baseline import (
    PYTHON_IMAGE,
    SIDECAR_IMAGE,
    SubnetPicker,
    create_bench_network,
    force_remove_container,
    job_host_config,
    remove_network,
)
from .common.commands import run_command, run_threads
from .common.context import Context
from .common.cpu import CpuMeter, container_seconds
from .common.cpu import describe as describe_cpu
from .common.cpu import per_job as cpu_per_job
from .common.orchestrator import close_orchestrator, make_orchestrator, python_spec
from .common.stats import median, now, paired_ratio, paired_ratios, summarize
from .common.table import Row, fmt_spread, log, print_rows

NAME = "throughput"
SCRIPT = "print('hi')\n"
CONCURRENCY = 8
TARGET = 1.0  # issue 11: at least the bare equivalent's rate


class SidecarCpu:
    """Registered on the benchmark's runtime: each execution's sidecar CPU seconds (boot, in a warm
    pool or not, and claim), read from its cgroup when the job has finished (it still runs then).
    Looks the sidecar up through the benchmark's own client: not counted as cronium's calls."""

    def __init__(self, ctx: Context):
        self.ctx, self.seconds, self._lock = ctx, [], threading.Lock()

    @hookimpl(tryfirst=True)
    def job_finished(self, execution, result, runtime):
        try:
            sidecar = self.ctx.docker.api.inspect_container(f"cronium-runtime-{execution.execution_id}")["Id"]
        except Exception:
            return
        used = container_seconds(sidecar)
        if used is not None:
            with self._lock:
                self.seconds.append(used)

    def take(self) -> list[float]:
        with self._lock:
            out, self.seconds = self.seconds, []
        return out


def _bare_job(ctx: Context, picker: SubnetPicker, tag: str, sidecar_cpu: list | None = None) -> float:
    api = ctx.docker.api
    t0 = now()
    base = f"cronium-bench-{ctx.run_id}-{tag}"
    net_name = f"{base}-net"
    net_id = create_bench_network(ctx, net_name, picker)
    created: list[str] = []
    try:
        side = api.create_container(
            SIDECAR_IMAGE, entrypoint=["python3", "-m", "http.server", "8081", "--bind", "0.0.0.0"],
            name=f"{base}-side", user="10001:10001", labels=ctx.labels,
            host_config=job_host_config(api, network=net_name, memory="96m", cpus=1.0, pids=64, work_tmpfs=False),
            networking_config=api.create_networking_config(
                {net_name: api.create_endpoint_config(aliases=["runtime-api"])}))["Id"]
        created.append(side)
        api.start(side)
        job = api.create_container(PYTHON_IMAGE, ["python3", "-c", SCRIPT], name=f"{base}-job", user="10001:10001",
                                   working_dir="/work", labels=ctx.labels,
                                   host_config=job_host_config(api, network=net_name))["Id"]
        created.append(job)
        api.start(job)
        status = api.wait(job)
        output = api.logs(job)
        if status.get("StatusCode") != 0 or b"hi" not in output:
            raise RuntimeError(f"bare job failed: {status} {output[:200]!r}")
        if sidecar_cpu is not None and (used := container_seconds(side)) is not None:
            sidecar_cpu.append(used)
    finally:
        threads = [threading.Thread(target=force_remove_container, args=(api, c)) for c in created[1:]]
        for t in threads:
            t.start()
        if created:
            force_remove_container(api, created[0])
        for t in threads:
            t.join()
        remove_network(api, net_id)
    return now() - t0


def _bare_batch(ctx: Context, n: int, pair: int, picker: SubnetPicker, meter: CpuMeter) -> dict[str, Any]:
    cpu0, t0, sidecar_cpu = meter.snapshot(), now(), []
    results = run_threads(lambda i: _bare_job(ctx, picker, f"{pair}-{i}", sidecar_cpu), n, CONCURRENCY)
    wall = now() - t0
    ok = [r for r in results if isinstance(r, float)]
    errors = [repr(r)[:300] for r in results if not isinstance(r, float)]
    return {"wall": wall, "ok": len(ok), "errors": errors, "jobs_per_s": len(ok) / wall, "job_latency": summarize(ok),
            "cpu_per_job": cpu_per_job(cpu0, meter.snapshot(), n), "sidecar_cpu": summarize(sidecar_cpu)}


def _docker_run_batch(ctx: Context, n: int, meter: CpuMeter) -> dict[str, Any]:
    argv = ["docker", "run", "--rm", "--label", f"cronium.bench={ctx.run_id}", PYTHON_IMAGE, "python3", "-c", SCRIPT]

    def job(i: int) -> float:
        r = run_command(argv, timeout=120)
        if r.returncode != 0 or "hi" not in r.stdout:
            raise RuntimeError(f"docker run failed ({r.returncode}): {r.stderr[-300:]}")
        return r.wall

    cpu0, t0 = meter.snapshot(), now()
    results = run_threads(job, n, CONCURRENCY)
    wall = now() - t0
    ok = [r for r in results if isinstance(r, float)]
    errors = [repr(r)[:300] for r in results if not isinstance(r, float)]
    return {"wall": wall, "ok": len(ok), "errors": errors, "jobs_per_s": len(ok) / wall, "job_latency": summarize(ok),
            "cpu_per_job": cpu_per_job(cpu0, meter.snapshot(), n)}


#: The runtime extensions that are warm pools (`plugins/slots.py`, `plugins/sidecar.py`).
POOLS = ("slot-pool", "sidecar-pool")


def _pool_counts(rt) -> dict[str, dict[str, int]]:
    pools = {name: rt.extension_if_present(name) for name in POOLS}
    return {name: dict(pool.counts) for name, pool in pools.items() if pool is not None}


def _hit_rates(before: dict, after: dict) -> dict[str, dict[str, int]]:
    """Per pool: claims served warm (hits) and asked for in vain (misses) during a batch."""
    out = {}
    for name, counts in after.items():
        old = before.get(name, {})
        out[name] = {k: counts.get(k, 0) - old.get(k, 0) for k in ("hits", "misses", "started", "drained")}
    return out


def _cronium_batch(ctx: Context, orch, capture, n: int, meter: CpuMeter, probe: SidecarCpu) -> dict[str, Any]:
    counter = ApiCallCounter(orch.runtime.docker.api)
    pools0 = _pool_counts(orch.runtime)

    def job(i: int) -> dict[str, Any]:
        t = now()
        r = orch.run(python_spec(SCRIPT, name="hi.py"))
        ctx.note_exec(r.execution_id)
        capture.pop(r.execution_id)
        return {"status": r.status, "latency": now() - t, "timings": dict(r.timings), "error": r.error}

    cpu0, t0 = meter.snapshot(), now()
    with counter:
        results = run_threads(job, n, CONCURRENCY)
    wall = now() - t0
    cpu = cpu_per_job(cpu0, meter.snapshot(), n)
    sidecar_cpu = summarize(probe.take())
    ok = [r for r in results if isinstance(r, dict) and r["status"] == "succeeded"]
    errors = [(r["error"] if isinstance(r, dict) else repr(r))[:300] for r in results
              if not (isinstance(r, dict) and r["status"] == "succeeded")]
    phases: dict[str, float] = {}
    for k in (ok[0]["timings"] if ok else {}):
        phases[k] = median([r["timings"].get(k) for r in ok])
    return {"wall": wall, "ok": len(ok), "errors": errors, "jobs_per_s": len(ok) / wall,
            "job_latency": summarize([r["latency"] for r in ok]), "phase_medians": phases,
            "engine_calls_per_job": counter.per_job(n), "cpu_per_job": cpu, "sidecar_cpu": sidecar_cpu,
            "pools": _hit_rates(pools0, _pool_counts(orch.runtime))}


def run(ctx: Context) -> dict[str, Any]:
    n = 16 if ctx.quick else 100
    pairs = ctx.n_pairs(1, 1)
    picker = SubnetPicker()
    rt, orch, capture = make_orchestrator(ctx)
    meter, probe = CpuMeter(ctx.docker.api), SidecarCpu(ctx)
    rt.pm.register(probe, name="bench-sidecar-cpu")
    cron, bare, plain = [], [], []
    try:
        log("warm-up: 1 cronium job, 1 bare job")
        orch.run(python_spec(SCRIPT, name="hi.py"))
        _bare_job(ctx, picker, "warmup")
        probe.take()
        for p in range(pairs):
            order = ("cronium", "bare", "docker run") if p % 2 == 0 else ("docker run", "bare", "cronium")
            for side in order:
                log(f"pair {p + 1}/{pairs}: {side}, {n} jobs, {CONCURRENCY} at a time")
                if side == "cronium":
                    cron.append(last := _cronium_batch(ctx, orch, capture, n, meter, probe))
                elif side == "bare":
                    bare.append(last := _bare_batch(ctx, n, p, picker, meter))
                else:
                    plain.append(last := _docker_run_batch(ctx, n, meter))
                log(f"  {last['ok']}/{n} ok in {last['wall']:.1f} s = {last['jobs_per_s']:.2f} jobs/s"
                    + (f"; {len(last['errors'])} errors, first: {last['errors'][0]}" if last["errors"] else ""))
    finally:
        close_orchestrator(rt, orch)

    c_rate, b_rate = [x["jobs_per_s"] for x in cron], [x["jobs_per_s"] for x in bare]
    ratio = paired_ratio(c_rate, b_rate)
    cs, bs = summarize(c_rate), summarize(b_rate)
    rows = [Row(NAME, f"jobs/s ({n} jobs, {CONCURRENCY} at a time)", "", median(b_rate), median(c_rate), ratio,
                f"≥ {TARGET}×", ratio >= TARGET, fmt_spread(bs), fmt_spread(cs))]
    p_rate = [x["jobs_per_s"] for x in plain]
    rows.append(Row(NAME, f"jobs/s vs `docker run --rm` ({n} jobs, {CONCURRENCY} at a time)", "", median(p_rate),
                    median(c_rate), paired_ratio(c_rate, p_rate), "–", None, fmt_spread(summarize(p_rate)),
                    fmt_spread(cs)))
    cl = [x["job_latency"].get("median") for x in cron]
    bl = [x["job_latency"].get("median") for x in bare]
    rows.append(Row(NAME, "per-job latency under load (median)", "s", median(bl), median(cl), paired_ratio(cl, bl),
                    "–", None))
    c_cpu = [x["cpu_per_job"]["work"] for x in cron]
    b_cpu = [x["cpu_per_job"]["work"] for x in bare]
    rows.append(Row(NAME, "CPU per job (all cores' busy time less other processes', / jobs)", "s", median(b_cpu), median(c_cpu),
                    paired_ratio(c_cpu, b_cpu), "–", None))
    c_side = [x["sidecar_cpu"].get("median") for x in cron]
    b_side = [x["sidecar_cpu"].get("median") for x in bare]
    rows.append(Row(NAME, "sidecar CPU per job (median; bare: http.server)", "s", median(b_side), median(c_side),
                    paired_ratio(c_side, b_side), "–", None))
    for name in POOLS:
        rates = [x["pools"][name]["hits"] / asked for x in cron
                 if name in x["pools"] and (asked := x["pools"][name]["hits"] + x["pools"][name]["misses"])]
        if rates:
            rows.append(Row(NAME, f"{name} hit rate under load (claims served warm)", "%", "–",
                            round(100 * median(rates)), None, "–", None))
    failed = sum(len(x["errors"]) for x in cron)
    if failed or any(x["errors"] for x in bare):
        rows.append(Row(NAME, "failed jobs (cronium / bare)", "", sum(len(x["errors"]) for x in bare), failed, None,
                        "0", failed == 0))
    print_rows(rows, "throughput")
    if cron and cron[-1].get("phase_medians"):
        log("cronium phase medians under load: " + ", ".join(
            f"{k} {v:.2f}s" for k, v in cron[-1]["phase_medians"].items()))
    if cron:
        log("cronium " + describe(cron[-1]["engine_calls_per_job"]))
        for name, c in cron[-1]["pools"].items():
            asked = c["hits"] + c["misses"]
            log(f"cronium {name}: {c['hits']}/{asked} claims served warm"
                + (f" ({c['hits'] / asked:.0%})" if asked else "") + f", {c['started']} started, {c['drained']} drained")
    for side, batches in (("cronium", cron), ("bare", bare), ("docker run", plain)):
        if batches:
            log(f"{side} " + describe_cpu(batches[-1]["cpu_per_job"]))
    return {"rows": rows,
            "params": {"jobs": n, "concurrency": CONCURRENCY, "pairs": pairs, "script": SCRIPT,
                       "bare_sidecar": "cronium/sidecar image, python3 -m http.server 8081 (readiness not awaited)"},
            "details": {"cronium": cron, "bare": bare, "docker_run": plain, "ratios": paired_ratios(c_rate, b_rate),
                        "ratios_docker_run": paired_ratios(c_rate, p_rate)},
            "notes": ["ratio = median over pairs of (cronium jobs/s / bare jobs/s)"]}
