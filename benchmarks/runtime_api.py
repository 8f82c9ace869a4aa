"""3. Runtime API: variable get/set latency (p50, p99) and requests per second from inside a job
container through its sidecar, against the same operations sent straight to Redis from the same
kind of container.

- cronium: a Python job (`cronium/python`, default profile: 1 CPU) sends keep-alive HTTP/1.1
  requests to `runtime-api:8081` with its token: PUT then GET
  `/executions/<id>/variables/bench_k<i % 100>`, sequentially on one connection; then the same
  operations mixed (alternating PUT/GET) on 4 connections at once. The job measures every request
  with `perf_counter` and prints one JSON line with its statistics.
- baseline: the same harness in the same image with the same limits, on a private network with a
  Redis the benchmark starts itself from `cronium/redis:latest` (append-only fsync everysec, like
  the managed one), speaking RESP: HSET / HGET on a hash (the sidecar stores a namespace's
  variables in one hash), one round trip per operation like the sidecar's.

The load generator must not be what limits the rate (the client, the sidecar and Redis share the
machine's cores): it is asyncio streams in one process, one task per connection, every request
pre-built as bytes, a response read as its head and Content-Length bytes. The table reports the
CPU (cores) each party used during the 4-connection run: the client measures its own process
time; the sidecar's and Redis's main processes are sampled from the host's /proc (the busiest
container named `cronium-runtime-*` of this orchestrator's owner: a claimed pooled slot's sidecar
carries the slot's labels, like its job container, and idle pooled ones are not named so).

The sidecar runs with its default limits except the request rate limit, which is raised through
config for the benchmark (`sidecar.rate_limit_per_minute`, `sidecar.rate_limit_burst`). Its image
is `images.sidecar` as configured, or `CRONIUM_IMAGES_SIDECAR` when set (to compare a build).
With `CRONIUM_BENCH_OLD_SIDECAR=<image>` (e.g. `cronium/sidecar:latest`), every round also runs the
same job against that image (a second orchestrator), in rotating order with the others, and the
table adds "vs old image" rows (ratios new / old, pair by pair) and both images' footprints.

Footprint: the same image started alone as the orchestrator starts it (`FOOTPRINT_RUNS` times,
settings on stdin, no network, Redis on a closed port): once its ready line is out, its process's RssAnon (anonymous
memory — what the memory cgroup's `rss` counts), its PSS (alone, so files count whole unless another
container maps them too) and the CPU it spent from exec to ready
(utime + stime from /proc/1/stat), read inside the container.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from .common.baseline import (
    PYTHON_IMAGE,
    REDIS_IMAGE,
    SubnetPicker,
    create_bench_network,
    force_remove_container,
    job_host_config,
    remove_network,
)
from .common.context import Context
from .common.orchestrator import close_orchestrator, make_orchestrator, python_spec
from .common.stats import median, paired_ratio, paired_ratios, summarize
from .common.table import Row, fmt_spread, log, print_rows

NAME = "runtime_api"
RATE_LIMIT = {"sidecar.rate_limit_per_minute": 6_000_000, "sidecar.rate_limit_burst": 1_000_000}
THREADS = 4
TARGET_P50_MS = 0.5
TARGET_RPS = 5000
TARGET_RSS_MB = 25
FOOTPRINT_RUNS = 5
MARK = "BENCH_RESULT "

HARNESS = r'''
import asyncio, json, os, socket, time
N, T, PER, WARM = {n}, {threads}, {per_thread}, {warm}
pc = time.perf_counter

def stats(lat, wall):
    lat = sorted(lat)
    q = lambda p: lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))] * 1000
    return {{"n": len(lat), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": lat[-1] * 1000,
            "mean_ms": sum(lat) / len(lat) * 1000, "rps": len(lat) / wall}}

async def connect():
    reader, writer = await asyncio.open_connection(HOST, PORT)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Conn(reader, writer)

async def seq(conn, requests, n):
    lat = []
    t0 = pc()
    for i in range(n):
        t = pc()
        await conn.call(requests[i % 100])
        lat.append(pc() - t)
    return lat, pc() - t0

async def worker(k, mixed):
    c = await connect()
    for i in range(PER):
        t = pc()
        await c.call((SETS if i % 2 else GETS)[(k * PER + i) % 100])
        mixed.append(pc() - t)

async def main():
    conn = await connect()
    await seq(conn, SETS, WARM); await seq(conn, GETS, WARM)
    cpu0 = time.process_time()
    set_lat, set_wall = await seq(conn, SETS, N)
    get_lat, get_wall = await seq(conn, GETS, N)
    seq_cpu = time.process_time() - cpu0
    mixed, errors = [], []
    cpu0, t0, w0 = time.process_time(), pc(), time.time()
    for outcome in await asyncio.gather(*(worker(k, mixed) for k in range(T)), return_exceptions=True):
        if outcome is not None:
            errors.append(repr(outcome))
    mixed_wall, mixed_cpu, w1 = pc() - t0, time.process_time() - cpu0, time.time()
    print("{mark}" + json.dumps({{"set": stats(set_lat, set_wall), "get": stats(get_lat, get_wall),
          "seq_rps": 2 * N / (set_wall + get_wall), "mixed": stats(mixed, mixed_wall) if mixed else None,
          "mixed_rps": len(mixed) / mixed_wall, "errors": errors,
          "client_cpu": {{"sequential": seq_cpu / (set_wall + get_wall), "mixed": mixed_cpu / mixed_wall}},
          "mixed_window": [w0, w1]}}), flush=True)

asyncio.run(main())
'''

# The load generator is lean so that it is not what limits the rate: asyncio streams, one
# keep-alive connection per worker, every request pre-built as bytes (100 keys), a response read
# as its head plus Content-Length bytes. Both sides use the same harness.
HTTP_CLIENT = r'''
HOST, PORT = os.environ.get("BENCH_HOST", "runtime-api"), int(os.environ.get("BENCH_PORT", "8081"))
TOKEN = os.environ["CRONIUM_EXECUTION_TOKEN"].encode()
BASE = b"/executions/%s/variables/bench_k" % os.environ["CRONIUM_EXECUTION_ID"].encode()
HEAD = b"Host: runtime-api\r\nAuthorization: Bearer " + TOKEN + b"\r\n"
GETS = [b"GET %s%d HTTP/1.1\r\n%s\r\n" % (BASE, k, HEAD) for k in range(100)]
SETS = [b"PUT %s%d HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (BASE, k, HEAD, len(b'{"value": %d}' % k), b'{"value": %d}' % k) for k in range(100)]

class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def call(self, request):
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"\r\ncontent-length:")
        body = await self.reader.readexactly(int(head[at + 17:head.index(b"\r\n", at + 2)]))
        if head[9:12] != b"200":
            raise SystemExit("HTTP %r %r" % (head[:12], body[:300]))
'''

RESP_CLIENT = r'''
HOST, PORT = "bench-redis", 6379
KEY = b"cronium:vars:bench"
GETS = [b"*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$%d\r\nbench_k%d\r\n" % (len(KEY), KEY, len(b"bench_k%d" % k), k)
        for k in range(100)]
SETS = [b"*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$%d\r\nbench_k%d\r\n$%d\r\n%d\r\n"
        % (len(KEY), KEY, len(b"bench_k%d" % k), k, len(b"%d" % k), k) for k in range(100)]

class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def call(self, request):
        self.writer.write(request)
        line = await self.reader.readuntil(b"\r\n")
        if line[:1] == b"$" and line[1:2] != b"-":
            await self.reader.readexactly(int(line[1:-2]) + 2)
        elif line[:1] == b"-":
            raise SystemExit(line.decode())
'''


def _script(client: str, n: int, per_thread: int, warm: int) -> str:
    return "import asyncio, json, os, socket, time\n" + client + HARNESS.format(n=n, threads=THREADS, per_thread=per_thread, warm=warm, mark=MARK)


def _parse(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"no result line in the job's output: {text[-1000:]}")


class CpuSampler:
    """CPU seconds of some containers' main processes over time, read from the host's /proc every
    `PERIOD` s in a thread (the engine runs on this machine). `find()` names the containers; it is
    asked again every `REFRESH` s, so a container that starts during the run is picked up."""

    PERIOD, REFRESH = 0.05, 1.0

    def __init__(self, api, find) -> None:
        self.api, self.find = api, find
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._pids: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._hz = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        refreshed = 0.0
        while not self._stop.wait(self.PERIOD):
            if time.monotonic() - refreshed > self.REFRESH:
                refreshed = time.monotonic()
                for cid in self.find():
                    if cid not in self._pids:
                        self._pids[cid] = self._pid(cid)
            for cid, pid in self._pids.items():
                try:
                    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.samples.setdefault(cid, []).append((time.time(), (int(fields[11]) + int(fields[12])) / self._hz))

    def _pid(self, cid: str) -> int:
        try:
            return self.api.inspect_container(cid)["State"]["Pid"]
        except Exception:  # gone, or no such container (another Redis than the managed one): not sampled
            return 0

    def busiest_share(self, window: list[float]) -> float | None:
        """The largest CPU share (cores) of one of the containers within the wall-clock `window`."""
        shares = []
        for series in self.samples.values():
            inside = [s for s in series if window[0] <= s[0] <= window[1]]
            if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
                shares.append((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]))
        return max(shares) if shares else None


def _add_cpu(result: dict[str, Any], sidecars: CpuSampler | None, redis: CpuSampler) -> dict[str, Any]:
    """The CPU shares during the 4-connection run: the client's (measured by itself), the sidecar's, Redis's."""
    window = result["mixed_window"]
    result["cpu"] = {"client": result["client_cpu"]["mixed"], "redis": redis.busiest_share(window),
                     "sidecar": sidecars.busiest_share(window) if sidecars else None}
    return result


def _cronium_once(ctx: Context, orch, capture, script: str, namespace: str) -> dict[str, Any]:
    result = orch.run(python_spec(script, name="api_bench.py", namespace=namespace, timeout=600))
    ctx.note_exec(result.execution_id)
    sink = capture.pop(result.execution_id)
    text = sink.text if sink else ""
    if result.status != "succeeded":
        raise RuntimeError(f"cronium job {result.status}: {result.error or ''} {text[-800:]}")
    return _parse(text)


def _baseline_once(ctx: Context, network: str, script: str) -> dict[str, Any]:
    api = ctx.docker.api
    cid = api.create_container(PYTHON_IMAGE, ["python3", "-c", script], user="10001:10001", working_dir="/work",
                               labels=ctx.labels, host_config=job_host_config(api, network=network))["Id"]
    try:
        api.start(cid)
        status = api.wait(cid, timeout=600)
        out = api.logs(cid).decode("utf-8", "replace")
    finally:
        force_remove_container(api, cid)
    if status.get("StatusCode") != 0:
        raise RuntimeError(f"baseline job failed: {status}: {out[-800:]}")
    return _parse(out)


FOOTPRINT_SETTINGS = {"execution_id": "exec_00000000000000fb", "job_id": "footprint", "host": "127.0.0.1",
                      "redis_url": "redis://127.0.0.1:1/0", "auth": {"algorithm": "HS256", "key": "f" * 40}}
#: Inside the sidecar container: its process's anonymous RSS (kB) and CPU ticks so far, one line.
FOOTPRINT_PROBE = ("import os; s = open('/proc/1/stat').read().rsplit(')', 1)[1].split(); "
                   "rss = [l.split()[1] for l in open('/proc/1/status') if l.startswith('RssAnon')][0]; "
                   "pss = [l.split()[1] for l in open('/proc/1/smaps_rollup') if l.startswith('Pss:')][0]; "
                   "print(rss, pss, int(s[11]) + int(s[12]), os.sysconf('SC_CLK_TCK'))")


def _sidecar_footprint(ctx: Context, image: str) -> dict[str, float]:
    """Start the sidecar as the orchestrator does (settings on stdin, no arguments), alone."""
    from cronium.plugins import _docker

    api = ctx.docker.api
    cid = api.create_container(image, stdin_open=True, labels=ctx.labels,
                               host_config=api.create_host_config(network_mode="none", mem_limit="128m"))["Id"]
    try:
        raw = _docker.attach(ctx.docker, cid)
        try:
            api.start(cid)
            _docker.send_and_close_stdin(raw, json.dumps(FOOTPRINT_SETTINGS).encode())
            deadline = time.monotonic() + 60
            while b'"ready"' not in api.logs(cid, stderr=False):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sidecar did not get ready: {api.logs(cid)[-800:]!r}")
                time.sleep(0.05)
        finally:
            _docker.close(raw)
        out = api.exec_start(api.exec_create(cid, ["python3", "-c", FOOTPRINT_PROBE])["Id"]).decode().split()
    finally:
        force_remove_container(api, cid)
    rss_kb, pss_kb, ticks, hz = (int(x) for x in out[-4:])
    return {"rss_mb": rss_kb / 1024, "pss_mb": pss_kb / 1024, "boot_cpu_s": ticks / hz}


def _footprints(ctx: Context, images: dict[str, str]) -> dict[str, list[dict[str, float]]]:
    """`FOOTPRINT_RUNS` footprints of each image, the images alternating (pair by pair, like the runs)."""
    footprints: dict[str, list[dict[str, float]]] = {label: [] for label in images}
    for _ in range(FOOTPRINT_RUNS):
        for label, image in images.items():
            footprints[label].append(_sidecar_footprint(ctx, image))
    return footprints


def _measure_pairs(ctx: Context, sidecars: dict[str, tuple], scripts: tuple[str, str], namespace: str, net_name: str,
                   redis_id: str, pairs: int) -> tuple[dict[str, list[dict]], list[dict]]:
    """`pairs` rounds of one run per sidecar image (`sidecars`: label -> (runtime, orchestrator, capture))
    and one baseline run, the order rotating from round to round, each with the CPU shares of its parties."""
    api, results, base = ctx.docker.api, {label: [] for label in sidecars}, []
    sides = [*sidecars, "redis"]
    for p in range(pairs):
        for side in sides[p % len(sides):] + sides[:p % len(sides)]:
            if side != "redis":
                rt, orch, capture = sidecars[side]
                # A claimed pooled slot's sidecar keeps the slot's labels (`cronium.role=slot`, like its job
                # container); claimed, it is named like any sidecar.
                owned = {"label": [f"cronium.owner={rt.owner}"], "name": "cronium-runtime-"}
                with CpuSampler(api, lambda: [c["Id"] for c in api.containers(filters=owned)]) as sc, \
                        CpuSampler(api, lambda: [rt.config["services.redis_container"]]) as redis:
                    r = _cronium_once(ctx, orch, capture, scripts[0], namespace)
                results[side].append(_add_cpu(r, sc, redis))
            else:
                with CpuSampler(api, lambda: [redis_id]) as redis:
                    r = _baseline_once(ctx, net_name, scripts[1])
                base.append(_add_cpu(r, None, redis))
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu"].items() if v is not None)
            log(f"pair {p + 1}/{pairs} {side}: get p50 {r['get']['p50_ms']:.2f} ms p99 {r['get']['p99_ms']:.2f} ms, "
                f"set p50 {r['set']['p50_ms']:.2f} ms, 1-conn {r['seq_rps']:.0f} req/s, "
                f"{THREADS}-conn {r['mixed_rps']:.0f} req/s (CPU cores: {cpu})"
                + (f", errors {r['errors']}" if r["errors"] else ""))
    return results, base


def _sidecar_images(rt_config) -> tuple[str, str | None]:
    """(the image under test, the image to compare it with in the same run or None): the comparison is
    `CRONIUM_BENCH_OLD_SIDECAR` when set and another image (e.g. `cronium/sidecar:latest` against a
    build under test named by `CRONIUM_IMAGES_SIDECAR`)."""
    image, old = rt_config["images.sidecar"], os.environ.get("CRONIUM_BENCH_OLD_SIDECAR") or None
    return image, (old if old and old != image else None)


def run(ctx: Context) -> dict[str, Any]:
    n, per_thread, warm = (1000, 500, 100) if ctx.quick else (5000, 1500, 200)
    pairs = ctx.n_pairs(1, 3)
    scripts = (_script(HTTP_CLIENT, n, per_thread, warm), _script(RESP_CLIENT, n, per_thread, warm))
    namespace = f"bench-{ctx.run_id}"
    ctx.namespaces.add(namespace)
    api = ctx.docker.api
    net_name = f"cronium-bench-{ctx.run_id}-redis-net"
    log("rate limit raised for this benchmark: " + ", ".join(f"{k}={v}" for k, v in RATE_LIMIT.items())
        + " (all other sidecar limits at their defaults)")
    overrides = {**RATE_LIMIT, **({"images.sidecar": os.environ["CRONIUM_IMAGES_SIDECAR"]}
                                   if os.environ.get("CRONIUM_IMAGES_SIDECAR") else {})}
    sidecars = {"cronium": make_orchestrator(ctx, overrides, keep_output=True)}
    sidecar_image, old_image = _sidecar_images(sidecars["cronium"][0].config)
    if old_image:
        sidecars["old image"] = make_orchestrator(ctx, {**overrides, "images.sidecar": old_image}, keep_output=True)
    log(f"sidecar image: {sidecar_image}" + (f"; compared in the same run with {old_image}" if old_image else ""))
    images = {"cronium": sidecar_image, "old image": old_image}
    net_id = redis_id = None
    try:
        net_id = create_bench_network(ctx, net_name, SubnetPicker())
        redis_id = _start_bench_redis(api, ctx, net_name)
        results, base = _measure_pairs(ctx, sidecars, scripts, namespace, net_name, redis_id, pairs)
        footprints = _footprints(ctx, {label: images[label] for label in sidecars})
    finally:
        for rt, orch, _ in sidecars.values():
            close_orchestrator(rt, orch)
        if redis_id:
            force_remove_container(api, redis_id)
        if net_id:
            remove_network(api, net_id)
    cron, footprint = results["cronium"], footprints["cronium"]
    rows = _rows(cron, base, footprint)
    if old_image:
        rows += _comparison_rows(cron, results["old image"], footprint, footprints["old image"], old_image)
    print_rows(rows, "runtime API (baseline = raw RESP to a private Redis from the same kind of container"
               + (f"; 'vs old image' rows: baseline = {old_image})" if old_image else ")"))
    return {"rows": rows,
            "params": {"sequential_ops_per_kind": n, "threads": THREADS, "ops_per_thread": per_thread,
                       "warmup_ops_per_kind": warm, "pairs": pairs, "config_overrides": RATE_LIMIT,
                       "job_limits": "default profile (1 CPU, 256m) for both sides"},
            "details": {"cronium": cron, "redis": base, "sidecar_footprint": footprint, "sidecar_image": sidecar_image,
                        "old_image": old_image, "old_image_runs": results.get("old image"),
                        "old_image_footprint": footprints.get("old image"),
                        "ratios_get_p50": paired_ratios(_metric(cron, "get", "p50_ms"), _metric(base, "get", "p50_ms"))},
            "notes": ["rate limit raised through config for this benchmark: " + json.dumps(RATE_LIMIT),
                      "ratio = median over pairs of cronium / baseline (latency: >1 is slower; req/s: <1 is slower)"]}


def _start_bench_redis(api, ctx: Context, net_name: str) -> str:
    redis_id = api.create_container(
        REDIS_IMAGE, ["--dir", "/data", "--bind", "0.0.0.0", "--protected-mode", "no", "--appendonly", "yes",
                      "--appendfsync", "everysec"],
        name=f"cronium-bench-{ctx.run_id}-redis", labels=ctx.labels,
        host_config=api.create_host_config(network_mode=net_name),
        networking_config=api.create_networking_config(
            {net_name: api.create_endpoint_config(aliases=["bench-redis"])}))["Id"]
    api.start(redis_id)
    return redis_id


def _metric(items: list[dict], *path: str) -> list:
    out = []
    for item in items:
        for key in path:
            item = item[key]
        out.append(item)
    return out


def _rows(cron: list[dict], base: list[dict], footprint: list[dict]) -> list[Row]:
    rows = []
    for op in ("get", "set"):
        for q, target in (("p50_ms", TARGET_P50_MS), ("p99_ms", None)):
            c, b = _metric(cron, op, q), _metric(base, op, q)
            rows.append(Row(NAME, f"{op.upper()} variable {q[:3]} (1 connection)", "ms", median(b), median(c),
                            paired_ratio(c, b), f"≤ {target:g} ms" if target else "–",
                            (median(c) <= target) if target else None, fmt_spread(summarize(b), "ms"),
                            fmt_spread(summarize(c), "ms")))
    c, b = _metric(cron, "seq_rps"), _metric(base, "seq_rps")
    rows.append(Row(NAME, "requests/s, 1 connection (sequential)", "", median(b), median(c), paired_ratio(c, b), "–",
                    None, fmt_spread(summarize(b)), fmt_spread(summarize(c))))
    c, b = _metric(cron, "mixed_rps"), _metric(base, "mixed_rps")
    rows.append(Row(NAME, f"requests/s, {THREADS} connections (mixed get/set)", "", median(b), median(c),
                    paired_ratio(c, b), f"≥ {TARGET_RPS:,}", median(c) >= TARGET_RPS,
                    fmt_spread(summarize(b)), fmt_spread(summarize(c))))
    for party in ("client", "sidecar", "redis"):
        c = [v for v in _metric(cron, "cpu", party) if v is not None]
        b = [v for v in _metric(base, "cpu", party) if v is not None]
        rows.append(Row(NAME, f"CPU of the {party} during the {THREADS}-connection run", "cores",
                        median(b) if b else None, median(c) if c else None, None, "report", None,
                        fmt_spread(summarize(b)) if b else "", fmt_spread(summarize(c)) if c else ""))
    rss, cpu = [f["rss_mb"] for f in footprint], [f["boot_cpu_s"] for f in footprint]
    rows.append(Row(NAME, "sidecar RSS (anonymous) when ready", "MB", None, median(rss), None, f"≤ {TARGET_RSS_MB} MB",
                    median(rss) <= TARGET_RSS_MB, "", fmt_spread(summarize(rss), "MB")))
    rows.append(Row(NAME, "sidecar boot CPU (exec → ready)", "s", None, median(cpu), None, "report", None, "",
                    fmt_spread(summarize(cpu), "s")))
    return rows


def _comparison_rows(new: list[dict], old: list[dict], new_footprint: list[dict], old_footprint: list[dict],
                     old_image: str) -> list[Row]:
    """The image under test against `old_image`, measured in the same rounds (ratio = new / old, pair by pair)."""
    rows = []
    for label, path, unit in (("GET p50", ("get", "p50_ms"), "ms"), ("SET p50", ("set", "p50_ms"), "ms"),
                              (f"requests/s, {THREADS} connections", ("mixed_rps",), ""),
                              (f"sidecar CPU, {THREADS}-connection run", ("cpu", "sidecar"), "cores")):
        n, o = _metric(new, *path), _metric(old, *path)
        if None in n or None in o:
            continue
        rows.append(Row(NAME, f"{label}, vs old image {old_image}", unit, median(o), median(n), paired_ratio(n, o),
                        "report", None, fmt_spread(summarize(o), unit), fmt_spread(summarize(n), unit)))
    for label, key, unit in (("sidecar RSS (anonymous) when ready", "rss_mb", "MB"),
                             ("sidecar PSS when ready (alone: its files shared with no other sidecar)", "pss_mb", "MB"),
                             ("sidecar boot CPU", "boot_cpu_s", "s")):
        n, o = [f[key] for f in new_footprint], [f[key] for f in old_footprint]
        rows.append(Row(NAME, f"{label}, vs old image {old_image}", unit, median(o), median(n), None, "report", None,
                        fmt_spread(summarize(o), unit), fmt_spread(summarize(n), unit)))
    return rows
