"""4. Logs: a job writes N (1,000,000) short lines; cronium delivers them to all three sinks — the
terminal (the `cronium run` subprocess's stdout, redirected by the benchmark to a file), the Redis
stream and the file sink — against `docker logs` of an equal container (same image, same script).

What is timed (both sides deliver every line to a file on the host):

- cronium: the whole `cronium run lines.py` command, spawn to exit (setup, the job writing its
  lines, all three sinks, cleanup);
- baseline: the whole `docker run -d` → `docker wait` → `docker logs <id> > file` (json-file log
  driver); `docker logs` alone is also reported.

lines/s = N / wall time. Every run is checked: the terminal output and the file sink hold N lines,
the Redis stream holds N lines, `docker logs` printed N lines. Peak memory of the `cronium run`
process is its VmHWM (peak RSS of its own address space, polled from /proc until it exits — not
wait4's ru_maxrss, which on Linux includes the benchmark process's RSS at fork); the baseline
column shows the `docker logs` CLI's, measured the same way, for context.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .common.baseline import PYTHON_IMAGE
from .common.commands import cronium_cli, parse_cli_summary, run_command
from .common.context import Context
from .common.orchestrator import make_config
from .common.stats import median, now, paired_ratio, paired_ratios, summarize
from .common.table import Row, fmt_spread, log, print_rows

NAME = "logs"
TARGET_RATIO = 0.8
TARGET_RSS_MB = 150.0
SCRIPT = """import sys
w = sys.stdout.buffer.write
N, B = {n}, 1000
for s in range(0, N, B):
    w(b"".join(b"log line %07d of the cronium benchmark\\n" % i for i in range(s, s + B)))
sys.stdout.flush()
"""


def count_lines(path: Path) -> int:
    total = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            total += chunk.count(b"\n")
    return total


def _redis_lines(store, execution_id: str) -> int:
    key = store.keys.logs(execution_id)
    total, start = 0, "-"
    while True:
        entries = store.redis.xrange(key, min=start, max="+", count=500)
        if not entries:
            break
        for entry_id, fields in entries:
            data = fields.get(b"data")
            if data:
                total += data.count(b"\n")
        last = entries[-1][0].decode()
        ms, _, seq = last.partition("-")
        start = f"{ms}-{int(seq) + 1}"
    return total


def _one_cronium(ctx: Context, argv: list[str], out_path: Path, logs_dir: Path, store, n: int, cap: float,
                 problems: list[str]) -> dict[str, Any]:
    """`cronium run lines.py` with its terminal output to a file; checks all three sinks hold n lines."""
    r = run_command(argv, stdout_path=out_path, timeout=cap)
    s = parse_cli_summary(r.stderr)
    eid = s.get("execution_id")
    ctx.note_exec(eid)
    res = {"wall": r.wall, "returncode": r.returncode, "maxrss_mb": r.maxrss_kb / 1024, "execution_id": eid,
           "duration": s.get("duration"), "phases": s.get("phases"), "capped": r.wall >= cap}
    res["terminal_lines"] = count_lines(out_path)
    sink_file = logs_dir / f"{eid}.log"
    res["file_sink_lines"] = count_lines(sink_file) if sink_file.exists() else None
    res["redis_lines"] = _redis_lines(store, eid) if eid else None
    if eid:
        store.redis.delete(store.keys.logs(eid))
    if sink_file.exists():
        sink_file.unlink()
    out_path.unlink(missing_ok=True)
    for k in ("terminal_lines", "file_sink_lines", "redis_lines"):
        if res[k] != n:
            problems.append(f"cronium {eid}: {k} = {res[k]}, expected {n}")
    if r.returncode != 0:
        problems.append(f"cronium run exited {r.returncode}: {r.stderr[-500:]}")
    return res


def _one_docker(ctx: Context, out_path: Path, n: int, cap: float, problems: list[str]) -> dict[str, Any]:
    """`docker run -d` → `docker wait` → `docker logs > file`, timed as a whole and `docker logs` alone."""
    t0 = now()
    started = run_command(["docker", "run", "-d", "--label", f"cronium.bench={ctx.run_id}", "--log-driver",
                           "json-file", PYTHON_IMAGE, "python3", "-c", SCRIPT.format(n=n)], timeout=cap)
    cid = started.stdout.strip()
    if started.returncode != 0 or not cid:
        raise RuntimeError(f"docker run failed: {started.stderr}")
    try:
        waited = run_command(["docker", "wait", cid], timeout=cap)
        t_exit = now() - t0
        logs = run_command(["docker", "logs", cid], stdout_path=out_path, timeout=cap)
        wall = now() - t0
    finally:
        run_command(["docker", "rm", "-f", cid], timeout=120)
    lines = count_lines(out_path)
    out_path.unlink(missing_ok=True)
    if lines != n or waited.stdout.strip() != "0":
        problems.append(f"docker: exit {waited.stdout.strip()}, {lines} lines, expected {n}")
    return {"wall": wall, "run_to_exit": t_exit, "logs_only": logs.wall, "logs_maxrss_mb": logs.maxrss_kb / 1024,
            "lines": lines}


def _rows(n: int, cron: list, base: list, problems: list[str]) -> tuple[list[Row], list[float], list[float]]:
    """The summary rows; (rows, cronium lines/s, docker lines/s)."""
    c_rate = [n / x["wall"] for x in cron]
    b_rate = [n / x["wall"] for x in base]
    ratio = paired_ratio(c_rate, b_rate)
    rows = [Row(NAME, f"lines/s, {n:,} lines, whole run (cronium run → 3 sinks vs docker run+wait+logs)", "",
                median(b_rate), median(c_rate), ratio, f"≥ {TARGET_RATIO}×", ratio >= TARGET_RATIO,
                fmt_spread(summarize(b_rate)), fmt_spread(summarize(c_rate)))]
    job_rate = [n / x["phases"]["job"] for x in cron if x["phases"].get("job")]
    logs_rate = [n / x["logs_only"] for x in base]
    rows.append(Row(NAME, "lines/s, delivery only (cronium job phase vs docker logs alone)", "", median(logs_rate),
                    median(job_rate), paired_ratio(job_rate, logs_rate), "–", None,
                    fmt_spread(summarize(logs_rate)), fmt_spread(summarize(job_rate))))
    rss = [x["maxrss_mb"] for x in cron]
    rows.append(Row(NAME, "peak RSS of the process (cronium run vs docker logs CLI)", "MB",
                    median([x["logs_maxrss_mb"] for x in base]), max(rss) if rss else None, None,
                    f"≤ {TARGET_RSS_MB:.0f} MB", bool(rss) and max(rss) <= TARGET_RSS_MB,
                    fmt_spread(summarize([x["logs_maxrss_mb"] for x in base]), "MB"),
                    f"{max(rss):.1f} MB (max of {len(rss)})" if rss else "–"))
    if problems:
        rows.append(Row(NAME, "delivery problems (lines missing, failed runs)", "", None, len(problems), None, "0",
                        False))
        for p in problems:
            log(f"problem: {p}")
    return rows, c_rate, b_rate


def run(ctx: Context) -> dict[str, Any]:
    n, cap = (100_000, 300) if ctx.quick else (1_000_000, 600)
    pairs = ctx.n_pairs(1, 3)
    script = ctx.tmp / "lines.py"
    script.write_text(SCRIPT.format(n=n))
    logs_dir = ctx.tmp / "logs-lines"
    cronium_argv = [cronium_cli(), "--set", f"logs.dir={logs_dir}", "run", str(script)]
    out_path = ctx.tmp / "lines.out"
    from cronium.core.runtime import Runtime

    rt = Runtime(make_config(ctx))
    store = rt.store
    cron, base, problems = [], [], []
    try:
        for p in range(pairs):
            order = ("cronium", "docker") if p % 2 == 0 else ("docker", "cronium")
            for side in order:
                if side == "cronium":
                    cron.append(_one_cronium(ctx, cronium_argv, out_path, logs_dir, store, n, cap, problems))
                    x = cron[-1]
                    log(f"pair {p + 1}/{pairs} cronium: {x['wall']:.2f} s = {n / x['wall']:,.0f} lines/s "
                        f"(job phase {x['phases'].get('job', float('nan')):.2f} s), peak RSS {x['maxrss_mb']:.0f} MB"
                        + (" — CAPPED" if x["capped"] else ""))
                else:
                    base.append(_one_docker(ctx, out_path, n, cap, problems))
                    x = base[-1]
                    log(f"pair {p + 1}/{pairs} docker: run→exit {x['run_to_exit']:.2f} s + logs {x['logs_only']:.2f} s "
                        f"= {n / x['wall']:,.0f} lines/s")
    finally:
        rt.close()

    rows, c_rate, b_rate = _rows(n, cron, base, problems)
    print_rows(rows, "logs")
    return {"rows": rows,
            "params": {"lines": n, "bytes_per_line": len(b"log line 0000000 of the cronium benchmark\n"),
                       "pairs": pairs, "cap_seconds": cap, "cronium_argv": cronium_argv,
                       "cronium_sinks": ["terminal (stdout to a file)", "redis stream", "file"],
                       "baseline": "docker run -d (json-file) → docker wait → docker logs > file; whole span timed"},
            "details": {"cronium": cron, "docker": base, "ratios": paired_ratios(c_rate, b_rate), "problems": problems},
            "notes": ["ratio = median over pairs of (cronium lines/s / docker lines/s)"]}
