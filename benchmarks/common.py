"""Shared plumbing of the benchmarks: timing, statistics, the table, JSON results, machine facts,
test configs/runtimes, the CLI runner, cgroup memory, and the clean-up checks.

Everything a benchmark creates carries the label `cronium.bench=<run id>` (bare-Docker baselines) or
belongs to an execution/owner that this run started (cronium side), so `sweep()` can remove exactly
what this run left behind — never anything of another process.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import platform
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cronium.core import (
    hookimpl,  # light: docker/redis are imported only when a job runs
)

ROOT = Path(__file__).resolve().parent
PROJECT = ROOT.parent
RESULTS = ROOT / "results"

PYTHON_IMAGE = "cronium/python:latest"
SIDECAR_IMAGE = "cronium/sidecar:latest"
REDIS_IMAGE = "cronium/redis:latest"
BENCH_LABEL = "cronium.bench"
#: Bare-Docker baseline networks take /28 subnets out of this pool (cronium's default pool is
#: 10.213.0.0/16; this one is next to it so the two never compete for addresses).
BENCH_POOL = "10.214.0.0/16"

now = time.perf_counter


def cronium_cli() -> str:
    """The `cronium` executable of the interpreter running the benchmarks (the project venv)."""
    candidate = Path(sys.executable).parent / "cronium"
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which("cronium")
    if not found:
        raise SystemExit("benchmarks: no `cronium` executable next to this Python or on PATH (run `make setup`)")
    return found


# --- statistics -------------------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def summarize(values: Sequence[float]) -> dict[str, float]:
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": median(xs), "p10": percentile(xs, 10), "p90": percentile(xs, 90),
            "min": min(xs), "max": max(xs), "mean": sum(xs) / len(xs)}


def paired_ratios(cronium: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """cronium[i] / baseline[i] for every pair where both exist (pairs ran back to back)."""
    return [c / b for c, b in zip(cronium, baseline) if c is not None and b not in (None, 0)]


def paired_ratio(cronium: Sequence[float], baseline: Sequence[float]) -> float:
    """The median of the per-pair ratios (NaN when there is no pair)."""
    return median(paired_ratios(cronium, baseline))


# --- formatting -------------------------------------------------------------------------------

def fmt_num(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, str):
        return value
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if abs(value) >= 1000:
        return f"{value:,.0f}{(' ' + unit) if unit else ''}"
    if abs(value) >= 100:
        return f"{value:.0f}{(' ' + unit) if unit else ''}"
    return f"{value:.2f}{(' ' + unit) if unit else ''}"


def fmt_spread(s: dict[str, float], unit: str = "") -> str:
    """'median (p10–p90)' of a summarize() dict."""
    if not s or not s.get("n"):
        return "–"
    if s["n"] == 1:
        return fmt_num(s["median"], unit)
    if s["n"] < 5:
        return f"{fmt_num(s['median'], unit)} ({fmt_num(s['min'], '')}–{fmt_num(s['max'], '')} min–max)"
    return f"{fmt_num(s['median'], unit)} ({fmt_num(s['p10'], '')}–{fmt_num(s['p90'], '')})"


def fmt_ratio(r: float | None) -> str:
    if r is None or r != r:
        return "–"
    return f"{r:.2f}×"


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    line = "  ".join("-" * w for w in widths)
    out = []
    if title:
        out.append(f"\n== {title} ==")
    out.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    out.append(line)
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    text = "\n".join(out)
    print(text, flush=True)
    return text


@dataclass
class Row:
    """One line of the summary table. `baseline`/`cronium` are the medians (numbers) in `unit`;
    `ratio` is cronium / baseline computed pair by pair (median of per-pair ratios)."""

    benchmark: str
    metric: str
    unit: str
    baseline: Any
    cronium: Any
    ratio: float | None
    target: str
    met: bool | None
    baseline_spread: str = ""
    cronium_spread: str = ""

    @classmethod
    def paired(cls, benchmark: str, metric: str, unit: str, cronium: Sequence[float], baseline: Sequence[float],
               max_ratio: float | None = None) -> "Row":
        """A row of two paired series of timings: medians, the pair-by-pair ratio, both spreads and,
        with `max_ratio`, the target `≤ max_ratio×`."""
        ratio = paired_ratio(cronium, baseline)
        return cls(benchmark, metric, unit, median(baseline), median(cronium), ratio,
                   "–" if max_ratio is None else f"≤ {max_ratio}×", None if max_ratio is None else ratio <= max_ratio,
                   fmt_spread(summarize(baseline), unit), fmt_spread(summarize(cronium), unit))

    def cells(self) -> list[str]:
        met = "–" if self.met is None else ("yes" if self.met else "NO")
        b = self.baseline_spread or fmt_num(self.baseline, self.unit)
        c = self.cronium_spread or fmt_num(self.cronium, self.unit)
        return [self.benchmark, self.metric, b, c, fmt_ratio(self.ratio), self.target, met]


SUMMARY_HEADERS = ("benchmark", "metric", "baseline", "cronium", "ratio", "target", "met")


def print_rows(rows: Sequence[Row], title: str) -> str:
    return print_table(SUMMARY_HEADERS, [r.cells() for r in rows], title=title)


def log(msg: str) -> None:
    print(f"  · {msg}", flush=True)


# --- machine facts -----------------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def meminfo() -> dict[str, int]:
    out = {}
    for line in _read("/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[name] = int(parts[0]) * 1024
    return out


def host_memory_used() -> int:
    """Bytes in use on the host: MemTotal − MemAvailable."""
    m = meminfo()
    return m.get("MemTotal", 0) - m.get("MemAvailable", 0)


def _git_head() -> str | None:
    """The commit the working tree is on, read from .git (no git command is run)."""
    git = PROJECT / ".git"
    head = _read(str(git / "HEAD")).strip()
    if head.startswith("ref: "):
        ref = head[5:]
        value = _read(str(git / ref)).strip()
        if not value:
            for line in _read(str(git / "packed-refs")).splitlines():
                if line.endswith(" " + ref):
                    value = line.split()[0]
        return value or None
    return head or None


def machine_info(client=None) -> dict[str, Any]:
    cpu = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    os_name = ""
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_model": cpu or platform.processor(),
        "cpu_cores": os.cpu_count(),
        "memory_bytes": meminfo().get("MemTotal"),
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
        "git_head": _git_head(),
    }
    try:
        import cronium.core

        info["cronium_version"] = cronium.core.__version__
    except Exception:
        pass
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True,
                             text=True, timeout=10)
        info["docker_cli_version"] = out.stdout.strip()
    except Exception:
        pass
    if client is not None:
        try:
            v = client.version()
            info["docker_server_version"] = v.get("Version")
            info["docker_api_version"] = v.get("ApiVersion")
            d = client.info()
            info["docker_storage_driver"] = d.get("Driver")
            info["docker_cgroup"] = f"{d.get('CgroupDriver')} v{d.get('CgroupVersion')}"
            info["containers_running_at_start"] = d.get("ContainersRunning")
        except Exception as exc:
            info["docker_error"] = str(exc)
    return info


# --- results -----------------------------------------------------------------------------------

def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Row):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


# --- the run's context ---------------------------------------------------------------------------

@dataclass
class Context:
    """What one `python -m benchmarks` invocation shares between benchmarks."""

    quick: bool
    pairs: int | None = None  # --pairs: override every benchmark's number of pairs
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    owners: set[str] = field(default_factory=set)
    exec_ids: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    machine: dict[str, Any] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory | None = None
    _client: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"cronium-bench-{self.run_id}-")
        return Path(self._tmp.name)

    @property
    def docker(self):
        """A Docker SDK client for the baselines (its own connection pool, not cronium's)."""
        if self._client is None:
            import docker

            self._client = docker.from_env(timeout=120, max_pool_size=64)
        return self._client

    @property
    def labels(self) -> dict[str, str]:
        return {BENCH_LABEL: self.run_id}

    def n_pairs(self, quick: int, full: int) -> int:
        return self.pairs or (quick if self.quick else full)

    def note_exec(self, execution_id: str | None) -> None:
        if execution_id:
            with self._lock:
                self.exec_ids.add(execution_id)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._client is not None:
            self._client.close()
            self._client = None


def make_config(ctx: Context, overrides: dict[str, Any] | None = None):
    """A cronium Config like the test fixture's: the managed Redis (the default), logs under the
    benchmark's temp dir, no user config, no CRONIUM_* environment; `overrides` win."""
    from cronium.core.config import load_config

    flags = {"logs.dir": str(ctx.tmp / "logs"), **(overrides or {})}
    return load_config(flags=flags, use_user_config=False, environ={}, cwd=ctx.tmp)


class CaptureSink:
    """A log sink that records when output first arrived and (optionally) keeps the text."""

    name = "bench-capture"

    def __init__(self, keep: bool):
        self.keep = keep
        self.first_at: float | None = None  # perf_counter of the first write
        self.first_wall: float | None = None
        self.lines = 0
        self.chunks: list[bytes] = []

    def write(self, batches) -> None:
        if self.first_at is None:
            self.first_at = now()
            self.first_wall = time.time()
        for b in batches:
            self.lines += b.count
            if self.keep:
                self.chunks.append(b.raw())

    def close(self, ok: bool) -> None:
        pass

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


class CapturePlugin:
    """Registered on a benchmark's Runtime: gives every execution a `CaptureSink`."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.sinks: dict[str, CaptureSink] = {}
        self._lock = threading.Lock()

    @hookimpl
    def log_sinks(self, execution, runtime):
        sink = CaptureSink(self.keep)
        with self._lock:
            self.sinks[execution.execution_id] = sink
        return sink

    def pop(self, execution_id: str) -> CaptureSink | None:
        with self._lock:
            return self.sinks.pop(execution_id, None)


def make_orchestrator(ctx: Context, overrides: dict[str, Any] | None = None, *, keep_output: bool = False):
    """(runtime, orchestrator, capture plugin) on a benchmark config. Close with `close_orchestrator`."""
    from cronium.core.lifecycle import Orchestrator
    from cronium.core.runtime import Runtime

    # A long-lived in-process orchestrator, like a worker: it keeps a warm pool when configured.
    rt = Runtime(make_config(ctx, overrides), warm_pool=True)
    capture = CapturePlugin(keep_output)
    rt.pm.register(capture, name="bench-capture")
    ctx.owners.add(rt.owner)
    return rt, Orchestrator(rt), capture


#: Config keys worth recording with every result (the code under test changes between runs).
CONFIG_KEYS = ("sidecar.pool_size", "sidecar.max_booting", "sidecar.ready_timeout", "sidecar.memory", "sidecar.cpus",
               "redis.sidecar_auth", "logs.docker_driver", "logs.file", "logs.redis", "network.subnet_prefix",
               "limits.stop_grace", "gc.on_start")


def config_snapshot(ctx: Context) -> dict[str, Any]:
    cfg = make_config(ctx)
    out = {}
    for key in CONFIG_KEYS:
        try:
            out[key] = cfg[key]
        except Exception:
            out[key] = None  # not (or no longer) a config key
    return out


def pool_mode(ctx: Context) -> str:
    size = config_snapshot(ctx).get("sidecar.pool_size")
    return f"warm pool of {size}" if size else "no warm pool"


def close_orchestrator(rt, orch) -> None:
    try:
        orch.close()
    finally:
        rt.close()


def python_spec(script: str, *, name: str = "job.py", **fields):
    from cronium.core.model import JobSpec

    return JobSpec(job_type="python", script=script.encode(), script_name=name,
                   job_id=f"bench-{Path(name).stem}"[:60], **fields)


# --- running commands ----------------------------------------------------------------------------

@dataclass
class CliRun:
    argv: list[str]
    wall: float
    returncode: int
    first_line: float | None  # seconds from spawn to the first stdout line (when stdout was piped)
    stdout: str
    stderr: str
    maxrss_kb: int  # peak RSS of the child process (its VmHWM, polled every 20 ms until it exits)


def run_command(argv: Sequence[str], *, stdout_path: Path | None = None, keep_stdout: bool = True,
                timeout: float = 600, env: dict[str, str] | None = None) -> CliRun:
    """Spawn `argv`, time it to exit, note when the first stdout line arrived (pipe mode) and track
    the child's peak RSS. stdout goes to `stdout_path` when given (no first-line time)."""
    out_fh = open(stdout_path, "wb") if stdout_path else None
    start = now()
    proc = subprocess.Popen(list(argv), stdout=out_fh or subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    first: list[float] = []
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []

    def read_out():
        for line in proc.stdout:
            if not first:
                first.append(now() - start)
            if keep_stdout:
                out_chunks.append(line)

    def read_err():
        for chunk in iter(lambda: proc.stderr.read(65536), b""):
            err_chunks.append(chunk)

    done = threading.Event()
    peak = [0]

    def watch_rss():
        # Peak RSS = the child's VmHWM (high-water mark of its own address space), polled until it
        # exits. wait4's ru_maxrss is useless here: Linux carries the parent's RSS at fork over
        # into the child's maxrss, so every child of a big benchmark process would look as big.
        path = f"/proc/{proc.pid}/status"
        while not done.is_set():
            try:
                with open(path, "rb") as fh:
                    for line in fh:
                        if line.startswith(b"VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
                            break
            except (OSError, ValueError):
                break
            done.wait(0.02)

    threads = [threading.Thread(target=read_err, daemon=True)]
    if out_fh is None:
        threads.append(threading.Thread(target=read_out, daemon=True))
    watcher = threading.Thread(target=watch_rss, daemon=True)
    watcher.start()
    for t in threads:
        t.start()
    timer = threading.Timer(timeout, lambda: _terminate(proc))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        wall = now() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        _terminate(proc)
        raise
    finally:
        done.set()
        timer.cancel()
        if out_fh:
            out_fh.close()
    watcher.join(5)
    for t in threads:
        t.join(30)
    return CliRun(list(argv), wall, proc.returncode, first[0] if first else None,
                  b"".join(out_chunks).decode("utf-8", "replace"), b"".join(err_chunks).decode("utf-8", "replace"),
                  peak[0])


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM (cronium cancels and cleans up), then SIGKILL after 30 s."""
    if proc.returncode is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        for _ in range(300):
            if proc.poll() is not None:
                return
            time.sleep(0.1)
        proc.kill()
    except (ProcessLookupError, ChildProcessError):
        pass


SUMMARY_RE = {
    "execution_id": re.compile(r"^execution: (exec_[0-9a-f]{16})", re.M),
    "status": re.compile(r"^status: (\w+)", re.M),
    "duration": re.compile(r"^duration: ([\d.]+)s", re.M),
    "phases": re.compile(r"^phases: (.*)$", re.M),
}


def parse_cli_summary(stderr: str) -> dict[str, Any]:
    """The summary `cronium run` prints on stderr: execution id, status, duration, phase timings."""
    out: dict[str, Any] = {}
    for key, rx in SUMMARY_RE.items():
        m = rx.search(stderr)
        if m:
            out[key] = m.group(1)
    if "duration" in out:
        out["duration"] = float(out["duration"])
    phases = {}
    for name, value in re.findall(r"(\w+) ([\d.]+)s", out.get("phases", "")):
        phases[name] = float(value)
    out["phases"] = phases
    return out


# --- Docker helpers for baselines --------------------------------------------------------------

class SubnetPicker:
    """Distinct /28 subnets out of BENCH_POOL for baseline networks (shuffled, thread-safe)."""

    def __init__(self, pool: str = BENCH_POOL, prefix: int = 28):
        net = ipaddress.ip_network(pool)
        self._size = 2 ** (32 - prefix)
        self._base = int(net.network_address)
        self._prefix = prefix
        self._order = list(range(2 ** (prefix - net.prefixlen)))
        random.shuffle(self._order)
        self._i = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            i = self._order[self._i % len(self._order)]
            self._i += 1
        return f"{ipaddress.ip_address(self._base + i * self._size)}/{self._prefix}"


def create_bench_network(ctx: Context, name: str, picker: SubnetPicker, *, internal: bool = True) -> str:
    """An internal bridge network with an explicit small subnet, like cronium's per-job network."""
    from docker.errors import APIError
    from docker.types import IPAMConfig, IPAMPool

    api = ctx.docker.api
    for _ in range(32):
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=picker.next())])
        try:
            return api.create_network(name, driver="bridge", internal=internal, ipam=ipam, labels=ctx.labels,
                                      check_duplicate=True)["Id"]
        except APIError as exc:
            if "overlap" in str(exc).lower():
                continue
            raise
    raise RuntimeError(f"no free subnet for {name} in {BENCH_POOL}")


def job_host_config(api, *, network: str | None = None, memory: str = "256m", cpus: float = 1.0,
                    pids: int = 256, work_tmpfs: bool = True, log_type: str | None = None, **extra):
    """A HostConfig comparable to cronium's default profile (read-only root, cap-drop ALL,
    no-new-privileges, memory/CPU/pids limits, tmpfs /tmp and /work)."""
    tmpfs = {"/tmp": "rw,nosuid,nodev,size=64m,mode=1777"}
    if work_tmpfs:
        tmpfs["/work"] = "rw,nosuid,nodev,size=64m,uid=10001,gid=10001,mode=0700"
    kwargs = dict(read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges:true"], mem_limit=memory,
                  memswap_limit=memory, nano_cpus=int(cpus * 1e9), pids_limit=pids, tmpfs=tmpfs)
    if network:
        kwargs["network_mode"] = network
    if log_type:
        kwargs["log_config"] = {"type": log_type, "config": {}}
    kwargs.update(extra)
    return api.create_host_config(**kwargs)


def force_remove_container(api, container_id: str) -> None:
    from docker.errors import NotFound

    try:
        api.remove_container(container_id, force=True, v=True)
    except NotFound:
        pass


def remove_network(api, network_id: str) -> None:
    from docker.errors import NotFound

    try:
        api.remove_network(network_id)
    except NotFound:
        pass


# --- memory from the cgroup -----------------------------------------------------------------------

def cgroup_memory(container_id: str) -> dict[str, int] | None:
    """{"usage": bytes charged to the container, "rss": anonymous memory} from its memory cgroup
    (v1 cgroupfs or systemd layouts, or v2); None when not found (use `docker stats`)."""
    v1 = [f"/sys/fs/cgroup/memory/docker/{container_id}",
          f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope"]
    for base in v1:
        usage = _read(base + "/memory.usage_in_bytes").strip()
        if usage:
            stat = _parse_stat(_read(base + "/memory.stat"))
            return {"usage": int(usage), "rss": stat.get("total_rss", stat.get("rss", 0)),
                    "cache": stat.get("total_cache", stat.get("cache", 0))}
    v2 = [f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope", f"/sys/fs/cgroup/docker/{container_id}"]
    for base in v2:
        usage = _read(base + "/memory.current").strip()
        if usage:
            stat = _parse_stat(_read(base + "/memory.stat"))
            return {"usage": int(usage), "rss": stat.get("anon", 0), "cache": stat.get("file", 0)}
    return None


def _parse_stat(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def docker_stats_memory(names: Sequence[str]) -> dict[str, int]:
    """Fallback: `docker stats --no-stream` memory usage (bytes) by container name."""
    if not names:
        return {}
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names],
                         capture_output=True, text=True, timeout=300)
    result = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            result[parts[0]] = _parse_docker_size(parts[1])
    return result


def _parse_docker_size(text: str) -> int:
    m = re.match(r"([\d.]+)([KMGT]?i?B)", text)
    if not m:
        return 0
    scale = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "KB": 1000, "MB": 1000**2,
             "GB": 1000**3}.get(m.group(2), 1)
    return int(float(m.group(1)) * scale)


MB = 1024 * 1024


# --- clean-up checks --------------------------------------------------------------------------------

def leftovers(client, label: str = "cronium.managed=true") -> list[dict[str, str]]:
    """Containers, networks and volumes carrying `label`, with their cronium labels."""
    api = client.api
    found = []
    for c in api.containers(all=True, filters={"label": label}):
        names = c.get("Names") or ["/" + c["Id"][:12]]  # a container being removed may have none
        found.append({"kind": "container", "name": names[0].lstrip("/"), "id": c["Id"], "state": c.get("State", ""),
                      "execution": c["Labels"].get("cronium.execution", ""),
                      "owner": c["Labels"].get("cronium.owner", ""), "bench": c["Labels"].get(BENCH_LABEL, "")})
    for n in api.networks(filters={"label": label}):
        labels = n.get("Labels") or {}
        found.append({"kind": "network", "name": n["Name"], "id": n["Id"],
                      "execution": labels.get("cronium.execution", ""), "owner": labels.get("cronium.owner", ""),
                      "bench": labels.get(BENCH_LABEL, "")})
    for v in api.volumes(filters={"label": label}).get("Volumes") or []:
        labels = v.get("Labels") or {}
        found.append({"kind": "volume", "name": v["Name"], "id": v["Name"],
                      "execution": labels.get("cronium.execution", ""), "owner": labels.get("cronium.owner", ""),
                      "bench": labels.get(BENCH_LABEL, "")})
    return found


def ours(ctx: Context, items: list[dict[str, str]]) -> list[dict[str, str]]:
    return [i for i in items if i["bench"] == ctx.run_id or i["owner"] in ctx.owners or i["execution"] in ctx.exec_ids
            or _owned_by_our_child(i["owner"])]


def _owned_by_our_child(owner: str) -> bool:
    """Owner ids are `<host>.<pid>.<random>`: a `cronium run` this benchmark spawned is our child
    (its execution id is only known once it has printed it)."""
    parts = owner.rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    try:
        stat = Path(f"/proc/{parts[1]}/stat").read_text()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()


def _foreign_processes(ctx: Context) -> list[str]:
    """Other cronium / pytest processes on this machine (not this benchmark's own `cronium run`s)."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if not cmd or f"cronium-bench-{ctx.run_id}" in cmd or "-m benchmarks" in cmd:
            continue
        if "pytest" in cmd or "bin/cronium " in cmd or cmd.endswith("bin/cronium"):
            found.append(f"{entry}: {cmd[:120]}")
    return found


class ActivityMonitor:
    """Samples, every `interval` seconds while a benchmark runs, what else uses the engine: cronium
    containers of other owners and other cronium/pytest processes. Their presence means the
    numbers are disturbed (and a reaper of a process using another Redis may remove this run's
    containers)."""

    def __init__(self, ctx: Context, interval: float = 3.0):
        self.ctx = ctx
        self.interval = interval
        self.samples = 0
        self.max_foreign_containers = 0
        self.samples_with_foreign = 0
        self.processes: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-monitor", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                a = foreign_activity(self.ctx)
                procs = _foreign_processes(self.ctx)
            except Exception:
                continue
            self.samples += 1
            n = a["foreign_cronium_containers"]
            self.max_foreign_containers = max(self.max_foreign_containers, n)
            if n or procs:
                self.samples_with_foreign += 1
            self.processes.update(p.split(": ", 1)[1] for p in procs)

    def __enter__(self) -> "ActivityMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def disturbed(self) -> bool:
        return self.samples_with_foreign > 0

    def report(self) -> dict[str, Any]:
        return {"samples": self.samples, "samples_with_foreign_activity": self.samples_with_foreign,
                "max_foreign_cronium_containers": self.max_foreign_containers,
                "foreign_processes": sorted(self.processes)[:20], "disturbed": self.disturbed}


def foreign_activity(ctx: Context) -> dict[str, Any]:
    """What else is using the engine and the CPU right now (these machines are shared and noisy):
    cronium containers of other owners (e.g. a test suite) and the load average."""
    try:
        items = leftovers(ctx.docker)
    except Exception:
        items = []
    mine = {i["id"] for i in ours(ctx, items)}
    foreign = [i for i in items if i["kind"] == "container" and i["id"] not in mine
               and i.get("state") not in ("removing", "dead", "exited")]
    try:
        running = len(ctx.docker.api.containers())
    except Exception:
        running = None
    return {"foreign_cronium_containers": len(foreign), "containers_running": running,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def sweep(ctx: Context) -> dict[str, Any]:
    """Remove whatever this run left behind (containers first, then networks), then report what
    still carries `cronium.managed` (ours and, separately, anyone's)."""
    client = ctx.docker
    api = client.api
    removed = []
    for _ in range(3):
        items = ours(ctx, leftovers(client) + leftovers(client, f"{BENCH_LABEL}={ctx.run_id}"))
        if not items:
            break
        for item in items:
            if item["kind"] == "container":
                try:
                    force_remove_container(api, item["id"])
                    removed.append(item["name"])
                except Exception:
                    pass  # e.g. "removal already in progress"
        for item in items:
            if item["kind"] == "network":
                try:
                    remove_network(api, item["id"])
                    removed.append(item["name"])
                except Exception:
                    pass
            elif item["kind"] == "volume":
                try:
                    api.remove_volume(item["id"], force=True)
                    removed.append(item["name"])
                except Exception:
                    pass
    managed = leftovers(client)
    return {"removed_by_sweep": removed, "ours_remaining": [i["name"] for i in ours(ctx, managed)],
            "managed_remaining_any_owner": [i["name"] for i in managed]}


def purge_redis(ctx: Context) -> int:
    """Delete the execution records, log streams and variable namespaces this run wrote to the
    managed Redis (a 1M-line log stream is tens of MB). Returns the number of keys removed."""
    if not ctx.exec_ids and not ctx.namespaces:
        return 0
    from cronium.core.runtime import Runtime

    rt = Runtime(make_config(ctx))
    try:
        store = rt.store
        keys = store.keys
        removed = 0
        ids = sorted(ctx.exec_ids)
        for i in range(0, len(ids), 200):
            chunk = ids[i:i + 200]
            pipe = store.redis.pipeline(transaction=False)
            for eid in chunk:
                pipe.delete(keys.execution(eid), keys.logs(eid))
            pipe.zrem(keys.executions, *chunk)
            removed += sum(r for r in pipe.execute()[:-1] if isinstance(r, int))
        for ns in ctx.namespaces:
            removed += store.redis.delete(keys.variables(ns))
        return removed
    finally:
        rt.close()


def install_sigterm_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread, so every `finally` clean-up runs."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"received signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def run_threads(target: Callable[[int], Any], count: int, concurrency: int) -> list[Any]:
    """Run target(i) for i in range(count), `concurrency` at a time; results in order (exceptions
    are returned, not raised)."""
    from concurrent.futures import ThreadPoolExecutor

    def safe(i):
        try:
            return target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            return exc

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench") as pool:
        return list(pool.map(safe, range(count)))
