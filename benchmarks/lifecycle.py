"""1. Lifecycle latency: one trivial Python job (`print('hi')`), sequentially, through cronium's whole
lifecycle (network, token, sidecar ready, job, logs, cleanup) versus bare `docker run --rm` of the
same image running the same script.

Two ways, each as interleaved pairs (the order inside a pair alternates):

- whole command: `cronium run hi.py` as a subprocess vs `docker run --rm cronium/python python3 -c …`
  via the docker CLI — wall time from spawn to exit, spawn to the first stdout line, and the CPU
  time of the `cronium` process itself — in three ways: one-shot (`--no-agent`), through a warm
  local agent, and the first run with no agent running (it starts the agent: docs/agent.md);
- in-process: `Orchestrator.run(spec)` vs the Docker SDK doing create → attach → start → read the
  output → wait → remove (the minimum a library needs to run a script and get its output) —
  wall time, and submit to the first output line (a log sink for cronium, the attach stream for
  the SDK).

Also: the sidecar's container start → ready (`JobResult.timings["sidecar_ready"]`) and the median of
every lifecycle phase, so the dominant phase is visible.
"""
from __future__ import annotations

from typing import Any, Callable

from .common.baseline import PYTHON_IMAGE
from .common.commands import cronium_cli, parse_cli_summary, run_command, stop_agents
from .common.context import Context
from .common.orchestrator import close_orchestrator, make_orchestrator, pool_mode, python_spec
from .common.stats import median, now, paired_ratios, summarize
from .common.table import Row, fmt_spread, log, print_rows, print_table

NAME = "lifecycle"
SCRIPT = "print('hi')\n"
TARGET_RATIO = 2.5
TARGET_SIDECAR = 0.5
TARGET_AGENT = 1.3  # issue 11: `cronium run` through a warm agent
TARGET_FIRST = 3.0  # issue 11: the first `cronium run`, which starts the agent
TARGET_CLIENT_CPU = 0.15  # issue 11: CPU of the client process on the agent path
TARGET_SLOTS = 1.0  # issue 11: `cronium run` through a warm agent with pooled slots
TARGET_IN_PROCESS = 1.2  # issue 11: Orchestrator.run (warm pools) vs the SDK's run; also submit → first line


def _sdk_run(ctx: Context) -> dict[str, float]:
    """create → attach → start → read output to EOF → wait → remove, with the low-level SDK API."""
    api = ctx.docker.api
    t0 = now()
    cid = api.create_container(PYTHON_IMAGE, ["python3", "-c", SCRIPT], labels=ctx.labels,
                               host_config=api.create_host_config())["Id"]
    try:
        sock = api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(60)
        api.start(cid)
        first = None
        data = b""
        while True:
            chunk = raw.recv(65536)
            if not chunk:
                break
            if first is None:
                first = now() - t0
            data += chunk
        try:
            raw.close()
        except OSError:
            pass
        status = api.wait(cid)
    finally:
        api.remove_container(cid, force=True)
    wall = now() - t0
    if b"hi" not in data or status.get("StatusCode") != 0:
        raise RuntimeError(f"SDK baseline run failed: status {status}, output {data[:200]!r}")
    return {"wall": wall, "first_line": first}


def _cronium_run(ctx: Context, orch, capture) -> dict[str, Any]:
    phases: dict[str, float] = {}
    t0 = now()
    result_at: list[float] = []

    def events(phase: str, state: str) -> None:
        phases[f"{phase}:{state}"] = now() - t0

    result = orch.run(python_spec(SCRIPT, name="hi.py"), events=events,
                      on_result=lambda r: result_at.append(now() - t0))
    wall = now() - t0
    ctx.note_exec(result.execution_id)
    sink = capture.pop(result.execution_id)
    if result.status != "succeeded":
        raise RuntimeError(f"cronium run failed: {result.status} {result.error}")
    return {"wall": wall, "first_line": (sink.first_at - t0) if sink and sink.first_at else None,
            "to_result": result_at[0] if result_at else None, "timings": dict(result.timings),
            "events": phases, "execution_id": result.execution_id}


def _pairs(cronium: Callable[[], dict], baseline: Callable[[], dict], n: int, out_c: list, out_b: list,
           failures: list[str]) -> None:
    """One warm-up pair, then `n` pairs, alternating which side goes first. A failed run is
    recorded (its pair is dropped); more than a third failing aborts the benchmark."""
    def attempt(fn, side):
        try:
            return fn()
        except Exception as exc:
            failures.append(f"{side}: {exc}"[:1000])
            log(f"run failed ({side}): {str(exc).splitlines()[0][:200]}")
            if len(failures) > max(2, n // 3):
                raise RuntimeError(f"too many failed runs ({len(failures)}); last: {exc}") from None
            return None

    attempt(cronium, "cronium warm-up"), attempt(baseline, "baseline warm-up")
    for i in range(n):
        if i % 2 == 0:
            c = attempt(cronium, "cronium")
            b = attempt(baseline, "baseline")
        else:
            b = attempt(baseline, "baseline")
            c = attempt(cronium, "cronium")
        if c is not None and b is not None:
            out_c.append(c)
            out_b.append(b)


#: The ways `cronium run` is measured as a whole command: (key, label, global options, run options, no
#: agent before each run). An agent serves one configuration: `--set pool.slots=false` gets its own.
CLI_MODES = (("oneshot", "one-shot (--no-agent)", [], ["--no-agent"], False),
             ("agent", "warm agent, no pooled slots", ["--set", "pool.slots=false"], [], False),
             ("slots", "warm agent, pooled slots", [], [], False),
             ("strict", "warm agent, pooled slots, --profile strict", [], ["--profile", "strict"], False),
             ("first", "first run, no agent running (starts it)", [], [], True))


def _whole_commands(ctx: Context, n: int, failures: list[str]) -> tuple[dict, list, dict, list[str]]:
    """A: `cronium run hi.py` vs `docker run --rm`, as whole commands, per mode of CLI_MODES;
    ({mode: cronium runs}, docker runs of the first mode, {mode: cronium argv}, docker argv)."""
    script = ctx.tmp / "hi.py"
    script.write_text(SCRIPT)
    base = [cronium_cli(), "--set", f"logs.dir={ctx.tmp / 'logs-cli'}"]
    docker_argv = ["docker", "run", "--rm", "--label", f"cronium.bench={ctx.run_id}", PYTHON_IMAGE,
                   "python3", "-c", SCRIPT]
    runs, baselines, argvs = {}, {}, {}

    def one_docker() -> dict[str, Any]:
        r = run_command(docker_argv, timeout=120)
        if r.returncode != 0 or "hi" not in r.stdout:
            raise RuntimeError(f"docker run failed ({r.returncode}): {r.stderr[-800:]}")
        return {"wall": r.wall, "first_line": r.first_line}

    stop_agents()
    try:
        for key, label, options, extra, cold in CLI_MODES:
            argv = argvs[key] = base + options + ["run"] + extra + [str(script)]
            log(f"whole commands, {label}: {n} pairs of `cronium run hi.py` / `docker run --rm` (+1 warm-up pair)")
            runs[key], baselines[key], mode_failures = [], [], []  # the abort threshold counts per mode
            try:
                _pairs(lambda: _one_cli(ctx, argv, cold), one_docker, n, runs[key], baselines[key], mode_failures)
            finally:
                failures.extend(f"{key}: {f}" for f in mode_failures)
    finally:
        stop_agents()
    return runs, baselines, argvs, docker_argv


def _one_cli(ctx: Context, argv: list[str], cold: bool) -> dict[str, Any]:
    if cold:
        stop_agents()  # not timed: the run then starts the agent itself
    r = run_command(argv, timeout=120)
    s = parse_cli_summary(r.stderr)
    ctx.note_exec(s.get("execution_id"))
    if r.returncode != 0 or "hi" not in r.stdout:
        raise RuntimeError(f"cronium run failed ({r.returncode}): {r.stderr[-800:]}")
    return {"wall": r.wall, "first_line": r.first_line, "duration": s.get("duration"), "cpu": r.cpu,
            "phases": s.get("phases", {}), "maxrss_kb": r.maxrss_kb, "execution_id": s.get("execution_id")}


def _in_process(ctx: Context, n: int, failures: list[str]) -> tuple[list, list]:
    """B: `Orchestrator.run` vs the Docker SDK, in this process; (cronium, sdk)."""
    log(f"in-process: {n} pairs of Orchestrator.run / Docker SDK create-attach-start-wait-remove (+1 warm-up)")
    rt, orch, capture = make_orchestrator(ctx)
    api_c, api_b = [], []
    try:
        _pairs(lambda: _cronium_run(ctx, orch, capture), lambda: _sdk_run(ctx), n, api_c, api_b, failures)
    finally:
        close_orchestrator(rt, orch)
    return api_c, api_b


def _col(items, key):
    return [x.get(key) for x in items]


def _rows(ctx: Context, cli: dict, cli_b: dict, api_c: list, api_b: list, failures: list[str]) -> list[Row]:
    rows: list[Row] = []
    for key, label, _, _, _ in CLI_MODES:
        target = {"oneshot": TARGET_RATIO, "agent": TARGET_AGENT, "slots": TARGET_SLOTS, "strict": TARGET_SLOTS,
                  "first": TARGET_FIRST}[key]
        rows.append(Row.paired(NAME, f"whole command wall, {label} (cronium run vs docker run --rm)", "s",
                               _col(cli[key], "wall"), _col(cli_b[key], "wall"), target))
        rows.append(Row.paired(NAME, f"whole command, {label}: spawn → first output line", "s",
                               _col(cli[key], "first_line"), _col(cli_b[key], "first_line")))
        cpu = summarize(_col(cli[key], "cpu"))
        rows.append(Row(NAME, f"CPU of the cronium process itself, {label}", "s", None, cpu.get("median"), None,
                        f"≤ {TARGET_CLIENT_CPU} s" if key in ("agent", "slots", "strict") else "–",
                        (cpu["median"] <= TARGET_CLIENT_CPU) if key in ("agent", "slots", "strict") and cpu.get("n")
                        else None,
                        "–",
                        fmt_spread(cpu, "s")))
    rows.append(Row.paired(NAME, "in-process wall (Orchestrator.run vs SDK)", "s", _col(api_c, "wall"),
                           _col(api_b, "wall"), TARGET_IN_PROCESS))
    rows.append(Row.paired(NAME, "in-process: submit → first output line", "s", _col(api_c, "first_line"),
                           _col(api_b, "first_line"), TARGET_IN_PROCESS))
    rows.append(Row.paired(NAME, "in-process: submit → result (before cleanup)", "s", _col(api_c, "to_result"),
                           _col(api_b, "wall")))
    cli_c = cli["oneshot"]
    # Sidecar start → ready, per mode: `cronium run` boots a sidecar cold; a long-lived process
    # (in-process here) may claim one from its warm pool (sidecar.pool_size) when that is enabled.
    for label, values in (("cronium run (cold boot)", [x["phases"].get("sidecar_ready") for x in cli_c]),
                          (f"in-process ({pool_mode(ctx)})", [x["timings"].get("sidecar_ready") for x in api_c])):
        rs = summarize([v for v in values if v is not None])
        rows.append(Row(NAME, f"sidecar container start → ready, {label}", "s", None, rs.get("median"), None,
                        f"≤ {TARGET_SIDECAR} s", (rs["median"] <= TARGET_SIDECAR) if rs.get("n") else None, "–",
                        fmt_spread(rs, "s")))
    if failures:
        rows.append(Row(NAME, "failed runs (their pairs dropped)", "", None, len(failures), None, "0", False))
    return rows


def _phase_breakdown(cli_c: list, api_c: list, slots_c: list, agent_c: list) -> tuple[list[str], list[float]]:
    """Print the median of every phase (where the time goes); (phase names, CLI overheads)."""
    phase_names: list[str] = []
    for timings in [x["timings"] for x in api_c] + [x["phases"] for x in slots_c + agent_c]:
        for k in timings:
            if k not in phase_names:
                phase_names.append(k)
    breakdown = []
    for k in phase_names:
        inproc = summarize([x["timings"].get(k) for x in api_c])
        clip = summarize([x["phases"].get(k) for x in cli_c])
        slotp = summarize([x["phases"].get(k) for x in slots_c])
        agentp = summarize([x["phases"].get(k) for x in agent_c])
        breakdown.append([k, fmt_spread(inproc, "s"), fmt_spread(clip, "s"), fmt_spread(agentp, "s"),
                          fmt_spread(slotp, "s")])
    overhead = _overhead(cli_c)
    breakdown.append(["CLI: wall − reported duration (interpreter start, imports, connect, exit)", "–",
                      fmt_spread(summarize(overhead), "s"), fmt_spread(summarize(_overhead(agent_c)), "s"),
                      fmt_spread(summarize(_overhead(slots_c)), "s")])
    inproc_unaccounted = [x["wall"] - sum(v for k, v in x["timings"].items() if k != "sidecar_ready") for x in api_c]
    breakdown.append(["in-process: wall − sum of phases", fmt_spread(summarize(inproc_unaccounted), "s"), "–", "–", "–"])
    rss = summarize([x["maxrss_kb"] / 1024 for x in cli_c])
    breakdown.append(["CLI peak RSS", "–", fmt_spread(rss, "MB"), "–", "–"])
    print_table(("phase (JobResult.timings)", "in-process median (p10–p90)", "cronium run median (p10–p90)",
                 "warm agent, no slots median (p10–p90)", "warm agent + pooled slots median (p10–p90)"), breakdown,
                title="lifecycle phases (cronium)")
    return phase_names, overhead


def _overhead(runs: list) -> list[float]:
    """wall − the duration the command reported, per run (what the client adds around the job)."""
    return [x["wall"] - x["duration"] for x in runs if x.get("duration") is not None]


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.n_pairs(5, 20)
    failures: list[str] = []
    cli, cli_b, cronium_argvs, docker_argv = _whole_commands(ctx, n, failures)
    api_c, api_b = _in_process(ctx, n, failures)
    rows = _rows(ctx, cli, cli_b, api_c, api_b, failures)
    print_rows(rows, "lifecycle latency")
    cli_c = cli["oneshot"]
    phase_names, overhead = _phase_breakdown(cli_c, api_c, cli["slots"], cli["agent"])
    return {
        "rows": rows,
        "params": {"pairs": n, "script": SCRIPT, "image": PYTHON_IMAGE, "cronium_argv": cronium_argvs,
                   "docker_argv": docker_argv, "order": "alternating within pairs; 1 warm-up pair per mode"},
        "details": {
            "cli": {key: {"cronium": cli[key], "docker": cli_b[key],
                          "ratios": paired_ratios(_col(cli[key], "wall"), _col(cli_b[key], "wall"))} for key in cli},
            "in_process": {"cronium": api_c, "sdk": api_b,
                           "ratios": paired_ratios(_col(api_c, "wall"), _col(api_b, "wall"))},
            "phase_medians_in_process": {k: median([x["timings"].get(k) for x in api_c]) for k in phase_names},
            "phase_medians_cli": {k: median([x["phases"].get(k) for x in cli_c]) for k in phase_names},
            "phase_medians_agent_slots": {k: median([x["phases"].get(k) for x in cli["slots"]]) for k in phase_names},
            "phase_medians_agent_no_slots": {k: median([x["phases"].get(k) for x in cli["agent"]]) for k in phase_names},
            "cli_overhead_median": median(overhead),
            "failures": failures,
        },
        "notes": ["ratio = median over pairs of (cronium / baseline) for each pair run back to back",
                  "SDK baseline: create, attach (stdout+stderr), start, read to EOF, wait, remove (default host config)",
                  "phase breakdown and CLI overhead: the one-shot (--no-agent) runs, and the warm agent's without and "
                  "with pooled slots (pool.slots, the default)"],
    }
