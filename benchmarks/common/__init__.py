"""Shared plumbing of the benchmarks, one module per concern:

- `stats` — the clock, percentiles, summaries, pair-by-pair ratios;
- `table` — number formatting, tables, the summary `Row`, progress lines;
- `machine` — machine facts recorded with every result;
- `results` — results as JSON files under benchmarks/results/;
- `context` — what one run shares between benchmarks (`Context`);
- `orchestrator` — benchmark configs, runtimes and orchestrators, the capture log sink, job specs;
- `commands` — child processes (wall time, first output line, peak RSS), `cronium run`'s summary,
  threads, SIGTERM as Ctrl-C;
- `baseline` — Docker helpers for the bare-Docker baselines;
- `memory` — container memory from the cgroup (or `docker stats`);
- `cleanup` — what this run left behind, removing it, and its Redis keys;
- `activity` — other cronium activity on the machine while a benchmark runs.

Everything a benchmark creates carries the label `cronium.bench=<run id>` (bare-Docker baselines) or
belongs to an execution/owner that this run started (cronium side), so `cleanup.sweep()` can remove
exactly what this run left behind — never anything of another process.
"""
