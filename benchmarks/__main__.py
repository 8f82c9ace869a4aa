"""`python -m benchmarks [NAME …] [--quick]`: run the benchmarks, print one summary table, write
`benchmarks/results/<name>.json` per benchmark and `benchmarks/results/summary.json`."""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from .common.activity import ActivityMonitor, foreign_activity
from .common.cleanup import purge_redis, sweep
from .common.commands import install_sigterm_as_interrupt
from .common.context import Context
from .common.machine import machine_info
from .common.orchestrator import config_snapshot
from .common.results import write_json
from .common.table import SUMMARY_HEADERS, Row, print_table

BENCHMARKS = ("lifecycle", "throughput", "runtime_api", "logs", "scale", "swarm_lifecycle", "dashboard")
ALIASES = {"runtime-api": "runtime_api", "api": "runtime_api", "runtime": "runtime_api", "log": "logs",
           "swarm": "swarm_lifecycle", "dash": "dashboard"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="cronium side by side with bare Docker, same run, same machine.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer repetitions and smaller sizes")
    parser.add_argument("--pairs", type=int, metavar="N",
                        help="override the number of cronium/baseline pairs of every benchmark")
    args = parser.parse_args(argv)
    names = []
    for name in args.names or BENCHMARKS:
        name = ALIASES.get(name, name).replace("-", "_")
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        if name not in names:
            names.append(name)
    args.names = names
    return args


def safe_sweep(ctx: Context) -> dict:
    try:
        return sweep(ctx)
    except Exception as exc:
        try:
            return sweep(ctx)  # engine objects change under us (removals in progress): once more
        except Exception:
            return {"error": f"{type(exc).__name__}: {exc}", "ours_remaining": [], "managed_remaining_any_owner": []}


def run_one(ctx: Context, name: str, quick: bool, disturbed: dict[str, dict],
            paths: dict[str, Path]) -> tuple[list[Row], bool]:
    """Run benchmark `name` with the activity monitor; write its results JSON (into `paths`) whatever
    happens. Returns (rows, interrupted)."""
    module = importlib.import_module(f".{name}", __package__)
    print(f"\n### {name}", flush=True)
    t0 = time.time()
    doc = {"benchmark": name, "quick": quick, "run_id": ctx.run_id, "machine": ctx.machine,
           "activity_before": foreign_activity(ctx)}
    if doc["activity_before"]["foreign_cronium_containers"]:
        print(f"  ! {doc['activity_before']['foreign_cronium_containers']} cronium containers of other "
              f"processes are running (a test suite?): numbers will be noisy, and a reaper using another "
              f"Redis may remove this run's containers", flush=True)
    monitor = ActivityMonitor(ctx)
    interrupted = False
    try:
        with monitor:
            out = module.run(ctx)
        doc.update(out)
        rows = out.get("rows", [])
    except KeyboardInterrupt:
        interrupted = True
        doc["error"] = "interrupted"
        rows = [Row(name, "interrupted", "", None, None, None, "–", False)]
    except Exception as exc:  # one broken benchmark must not hide the others' numbers
        traceback.print_exc()
        doc["error"] = f"{type(exc).__name__}: {exc}"
        doc["traceback"] = traceback.format_exc()
        rows = [Row(name, f"FAILED: {type(exc).__name__}: {str(exc)[:80]}", "", None, None, None, "–", False)]
    finally:
        doc["duration_seconds"] = round(time.time() - t0, 1)
        doc["activity_after"] = foreign_activity(ctx)
        doc["interference"] = monitor.report()
        if monitor.disturbed:
            disturbed[name] = monitor.report()
            print(f"  ! other cronium activity during {name}: {monitor.samples_with_foreign}/{monitor.samples} "
                  f"samples, up to {monitor.max_foreign_containers} foreign cronium containers; processes: "
                  f"{'; '.join(sorted(monitor.processes)[:3]) or '–'}", flush=True)
        doc["cleanup"] = safe_sweep(ctx)
        if doc["cleanup"]["ours_remaining"]:
            print(f"  ! left behind after {name}: {doc['cleanup']['ours_remaining']}", flush=True)
        doc["rows"] = rows
        paths[name] = write_json(name, doc)
    print(f"  ({name}: {doc['duration_seconds']:.0f} s, results in {paths[name]})", flush=True)
    return rows, interrupted


def finish(ctx: Context, args: argparse.Namespace, started: float, all_rows: list[Row], disturbed: dict[str, dict],
           paths: dict[str, Path], interrupted: bool) -> None:
    """The last sweep, this run's Redis keys, the summary table and summary.json."""
    final = safe_sweep(ctx)
    try:
        purged = purge_redis(ctx)
    except Exception as exc:
        purged = f"failed: {exc}"
    total = time.time() - started
    print_table(SUMMARY_HEADERS, [r.cells() for r in all_rows],
                title=f"summary ({'quick, ' if args.quick else ''}{total / 60:.1f} min)")
    if disturbed:
        print("\n! DISTURBED by other cronium/pytest activity on this machine (numbers not reliable): "
              + ", ".join(f"{k} ({v['samples_with_foreign_activity']}/{v['samples']} samples)"
                          for k, v in disturbed.items()))
    else:
        print("\nno other cronium/pytest activity was seen during the run")
    ours_left = final["ours_remaining"]
    print(f"\ncleanup: {'nothing left' if not ours_left else 'LEFT BEHIND: ' + ', '.join(ours_left)} "
          f"(cronium.managed objects of any owner now: {len(final['managed_remaining_any_owner'])}); "
          f"Redis keys of this run removed: {purged}")
    summary = {"run_id": ctx.run_id, "quick": args.quick, "benchmarks": args.names, "machine": ctx.machine,
               "total_seconds": round(total, 1), "interrupted": interrupted, "rows": all_rows,
               "disturbed": disturbed,
               "results": {k: str(v) for k, v in paths.items()}, "cleanup": final, "redis_keys_removed": purged}
    path = write_json("summary", summary)
    print(f"results: {path}" + "".join(f"\n         {p}" for p in paths.values()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_as_interrupt()
    ctx = Context(quick=args.quick, pairs=args.pairs)
    started = time.time()
    print(f"cronium benchmarks {'(quick) ' if args.quick else ''}— run {ctx.run_id}: {', '.join(args.names)}", flush=True)
    ctx.machine = machine_info(ctx.docker)
    m = ctx.machine
    print(f"machine: {m.get('cpu_model')} × {m.get('cpu_cores')} cores, {m.get('memory_bytes', 0) / 2**30:.1f} GiB, "
          f"kernel {m.get('kernel')}, Docker {m.get('docker_server_version')} (API {m.get('docker_api_version')}), "
          f"load {m['loadavg_at_start'][0]:.2f}", flush=True)
    try:
        ctx.machine["cronium_config"] = config_snapshot(ctx)
    except Exception as exc:
        ctx.machine["cronium_config"] = f"unreadable: {exc}"
    all_rows: list[Row] = []
    disturbed: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    interrupted = False
    try:
        for name in args.names:
            rows, interrupted = run_one(ctx, name, args.quick, disturbed, paths)
            all_rows.extend(rows)
            if interrupted:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        finish(ctx, args, started, all_rows, disturbed, paths, interrupted)
        ctx.close()
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
