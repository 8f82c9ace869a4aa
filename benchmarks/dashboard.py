"""dashboard: the web dashboard's pages with 100,000 executions in Redis.

A Redis of the benchmark's own (`cronium/redis:latest`, published on a loopback port, removed at the
end with everything in it) is seeded with 100,000 execution records (10,000 with `--quick`) through
the store's own `records.create_many` (pipelined, 1,000 records a round trip), spread over 30 days,
with a log stream for the oldest and the newest one. `cronium dashboard` then runs as a real process
on 127.0.0.1 against that Redis, and each pair is one GET of a page (a kept-alive HTTP connection)
and, back to back, the baseline: what `cronium ps` / `cronium inspect` read from the store for the
same page, in this process (`core.listing.select`, the query behind both the list and `ps`, with
the page's limit of 51; `records.get` + the log's first entries):

| page | dashboard | baseline |
|---|---|---|
| `/` first page | GET `/` | `select(show_all=True, limit=51)` |
| `/` filtered | GET `/?status=failed&job=JOB&namespace=NS` | `select` with the same filters |
| an old execution | GET `/executions/<oldest>` | `records.get` + 200 log entries |
| a new execution | GET `/executions/<newest>` | the same |

Reported per page: p50 and p95 of both, and the ratio dashboard / baseline pair by pair (median of
the per-pair ratios). Run it under `flock /tmp/cronium-integration.lock` on a shared machine.
"""
from __future__ import annotations

import http.client
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .common.baseline import REDIS_IMAGE, force_remove_container
from .common.context import Context
from .common.stats import now, paired_ratio, percentile, summarize
from .common.table import Row, fmt_spread, log, print_rows

NAME = "dashboard"
JOBS = [f"job-{i:02d}" for i in range(40)]
NAMESPACES = ["default", "etl", "billing", "reports", "ops"]
#: (status, share) of the seeded records; a few are live (running) so the live set is not empty.
STATUSES = [("succeeded", 0.80), ("failed", 0.15), ("cancelled", 0.04), ("timed_out", 0.0098), ("running", 0.0002)]
DAYS = 30
READY_TIMEOUT = 60.0
FILTER = {"status": "failed", "job": "job-07", "namespace": "etl"}
LOG_LINES = 200
#: Rows the list page asks `select` for (its 50 and one to know whether an older page exists).
LIST_LIMIT = 51


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(ctx: Context) -> tuple[str, str]:
    """Our own Redis, published on a loopback port: (container id, url)."""
    api = ctx.docker.api
    password = os.urandom(12).hex()
    cid = api.create_container(
        REDIS_IMAGE, ["--requirepass", password, "--save", "", "--appendonly", "no", "--bind", "0.0.0.0",
                      "--protected-mode", "no"],
        name=f"cronium-bench-{ctx.run_id}-dash-redis", labels=ctx.labels, ports=[6379],
        host_config=api.create_host_config(port_bindings={6379: ("127.0.0.1", None)}))["Id"]
    api.start(cid)
    port = int(api.port(cid, 6379)[0]["HostPort"])
    return cid, f"redis://:{password}@127.0.0.1:{port}/0"


def _wait_for_redis(store) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            store.ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _records(n: int, seed: int = 15) -> list[tuple[str, dict[str, Any], float]]:
    """n final (and a few running) execution records, oldest first, created over the last DAYS days."""
    from cronium.core.model import new_execution_id
    from cronium.core.record import new_record

    rnd = random.Random(seed)
    statuses, weights = zip(*STATUSES)
    start = time.time() - DAYS * 86400
    out = []
    for i in range(n):
        created = start + (i + rnd.random()) * DAYS * 86400 / n
        job, ns, status = rnd.choice(JOBS), rnd.choice(NAMESPACES), rnd.choices(statuses, weights)[0]
        eid = new_execution_id()
        rec = new_record(execution_id=eid, job_id=job, job_name=job, job_type="python", namespace=ns,
                         status=status, created_at=created, spec={"image": "cronium/python:latest", "timeout": 300},
                         attempt=1, owner="bench@host:1", host="host")
        took = rnd.uniform(0.4, 30)
        rec.update(started_at=created + 0.2, trigger="schedule")
        if status != "running":
            rec.update(finished_at=created + took, exit_code=0 if status == "succeeded" else 1,
                       error="" if status == "succeeded" else f"the job exited with {status}",
                       timings={"token": 0.002, "network": 0.05, "sidecar": 0.3, "job": took - 0.4, "cleanup": 0.1})
        out.append((eid, rec, created))
    return out


def _seed(store, n: int) -> tuple[str, str, float]:
    """Write n records and two log streams; (oldest id, newest id, seconds taken)."""
    t = now()
    records = _records(n)
    store.records.create_many(records)
    for eid in (records[0][0], records[-1][0]):
        store.logs.append(eid, ({"seq": i, "stream": "stdout" if i % 5 else "stderr", "data": f"line {i} of the job\n",
                                 "partial": 0} for i in range(LOG_LINES)), max_entries=10000, ttl=86400)
        store.logs.end(eid, max_entries=10000, ttl=86400)
    return records[0][0], records[-1][0], now() - t


def _start_dashboard(ctx: Context, url: str) -> tuple[subprocess.Popen, int, Path]:
    """`cronium dashboard` on 127.0.0.1 against our Redis; waits (bounded) until `/` answers."""
    config = ctx.tmp / "dashboard.toml"
    config.write_text(f'[redis]\nurl = "{url}"\n[logs]\ndir = "{ctx.tmp / "logs"}"\n')
    port = _free_port()
    exe = str(Path(sys.executable).parent / "cronium")
    err = ctx.tmp / "dashboard.stderr"
    # logs.dir on the command line names this run's temp dir: the activity monitor knows it as ours
    proc = subprocess.Popen([exe, "--set", f"logs.dir={ctx.tmp / 'logs'}", "dashboard", "--host", "127.0.0.1",
                             "--port", str(port)],
                            env={**os.environ, "CRONIUM_CONFIG": str(config)}, stdout=subprocess.DEVNULL,
                            stderr=err.open("wb"))
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cronium dashboard exited ({proc.returncode}): {err.read_text()[-500:]}")
        try:
            status, _ = _get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "/")
            if status == 200:
                return proc, port, err
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"cronium dashboard did not answer within {READY_TIMEOUT:.0f} s: {err.read_text()[-500:]}")


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, int]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, len(resp.read())


def _pages(oldest: str, newest: str):
    """(label, dashboard path, baseline callable(store)) for each measured page."""
    from cronium.core.listing import select

    def listing(**filters):
        statuses = (filters.pop("status"),) if "status" in filters else ()
        return lambda store: select(store, show_all=True, since=None, namespace=filters.get("namespace"),
                                    job=filters.get("job"), statuses=statuses, limit=LIST_LIMIT)

    def execution(eid):
        return lambda store: (store.records.get(eid), store.logs.span(eid, count=LOG_LINES + 1))

    return [("/ first page", "/", listing()),
            ("/ filtered (status, job, namespace)", "/?" + urllib.parse.urlencode(FILTER), listing(**FILTER)),
            ("/executions/<id>, oldest", f"/executions/{oldest}", execution(oldest)),
            ("/executions/<id>, newest", f"/executions/{newest}", execution(newest))]


def _measure(store, port: int, pages, pairs: int) -> dict[str, dict[str, list[float]]]:
    """`pairs` pairs per page (after one warm-up each), the side going first alternating: ms."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out: dict[str, dict[str, list[float]]] = {}
    try:
        for label, path, baseline in pages:
            status, size = _get(conn, path)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")
            baseline(store)
            series = out[label] = {"dashboard": [], "baseline": [], "bytes": [size]}
            for p in range(pairs):
                for side in (("dashboard", "baseline") if p % 2 == 0 else ("baseline", "dashboard")):
                    t = now()
                    if side == "dashboard":
                        status, _ = _get(conn, path)
                        if status != 200:
                            raise RuntimeError(f"GET {path} answered {status}")
                    else:
                        baseline(store)
                    series[side].append((now() - t) * 1000)
    finally:
        conn.close()
    return out


def _rows(measured: dict[str, dict[str, list[float]]]) -> list[Row]:
    rows = []
    for label, s in measured.items():
        d, b = s["dashboard"], s["baseline"]
        rows.append(Row(NAME, f"{label} p50", "ms", percentile(b, 50), percentile(d, 50), paired_ratio(d, b), "–",
                        None, fmt_spread(summarize(b), "ms"), fmt_spread(summarize(d), "ms")))
        rows.append(Row(NAME, f"{label} p95", "ms", percentile(b, 95), percentile(d, 95),
                        percentile(d, 95) / percentile(b, 95), "–", None))
    return rows


def run(ctx: Context) -> dict[str, Any]:
    from cronium.core.store import Store

    n = 10_000 if ctx.quick else 100_000
    pairs = ctx.n_pairs(10, 40)
    api = ctx.docker.api
    redis_id = proc = store = None
    try:
        redis_id, url = _start_redis(ctx)
        store = Store(url, command_timeout=60)
        _wait_for_redis(store)
        oldest, newest, seeded_in = _seed(store, n)
        log(f"seeded {n:,} execution records in {seeded_in:.1f} s (store.records.create_many)")
        proc, port, _ = _start_dashboard(ctx, url)
        measured = _measure(store, port, _pages(oldest, newest), pairs)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if store is not None:
            store.close()
        if redis_id:
            force_remove_container(api, redis_id)  # with every key the benchmark wrote
    rows = _rows(measured)
    print_rows(rows, f"dashboard with {n:,} executions ({pairs} pairs per page)")
    return {"rows": rows, "records": n, "pairs": pairs, "seed_seconds": round(seeded_in, 2), "raw": measured}
