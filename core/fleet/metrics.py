"""Prometheus metrics in the text exposition format (version 0.0.4), served over HTTP.

Written by hand rather than with `prometheus_client`: cronium needs three metric kinds, labels,
the standard process metrics and one HTTP endpoint — a few hundred lines — and one dependency
less on every worker host (README, "Dependencies", says why). A wrong number of label values
raises `ValueError` naming the metric and its labels, as prometheus_client does.

Process metrics (`process_resident_memory_bytes`, `process_cpu_seconds_total`, …) carry the names
and meanings of prometheus_client's process collector, read from /proc at scrape time (Linux;
elsewhere they are left out), so dashboards made for it work unchanged.

Per-process metrics (counters, histograms) are updated by the worker and scheduler of this
process; cluster-wide gauges (queue depth, heartbeats) are read from Redis at scrape time, so any
`cronium serve`/`worker`/`scheduler` reports them.
"""
from __future__ import annotations

import logging
import math
import os
import resource
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, Sequence

log = logging.getLogger("cronium.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds; phases range from milliseconds (token) to hours (job).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)

LabelValues = tuple[str, ...]


def escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self._lock = threading.Lock()

    def check_labels(self, values: Sequence[str]) -> None:
        """Raise ValueError unless `values` has one value per label name."""
        if len(values) != len(self.label_names):
            expected = ", ".join(self.label_names) if self.label_names else "no labels"
            raise ValueError(f"metric {self.name}: got {len(values)} label value(s) {tuple(values)!r}, "
                             f"expected {len(self.label_names)} ({expected})")

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()):
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {} if labels else {(): 0.0}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.check_labels(labels)
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {format_value(v)}" for k, v in items]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS):
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[LabelValues, list] = {}  # labels -> [bucket counts..., sum, count]

    def observe(self, value: float, *labels: str) -> None:
        self.check_labels(labels)
        with self._lock:
            series = self._series.setdefault(labels, [0] * len(self.buckets) + [0.0, 0])
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
            series[-2] += value
            series[-1] += 1

    def samples(self) -> list[str]:
        lines = []
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for labels, series in items:
            for bound, count in zip(self.buckets, series):
                le = 'le="%s"' % format_value(bound)
                lines.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {count}")
            le = 'le="+Inf"'
            lines.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {series[-1]}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {format_value(series[-2])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {series[-1]}")
        return lines


class Gauge(_Metric):
    """A gauge whose samples come from a callback at scrape time: `collect() -> [(labels, value)]`."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 collect: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None):
        super().__init__(name, help, labels)
        self._collect = collect
        self._values: dict[LabelValues, float] = {} if labels else {(): 0.0}

    def set(self, value: float, *labels: str) -> None:
        self.check_labels(labels)
        with self._lock:
            self._values[labels] = value

    def samples(self) -> list[str]:
        if self._collect is not None:
            items = sorted(self._collect())
            for labels, _ in items:
                self.check_labels(labels)
        else:
            with self._lock:
                items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {format_value(v)}" for k, v in items]


class CollectedCounter(Gauge):
    """A counter whose value comes from a callback at scrape time (a total kept elsewhere: CPU time)."""

    kind = "counter"


def process_stats(proc: str = "/proc/self") -> dict[str, float]:
    """What prometheus_client's process collector reports, from /proc (Linux): resident and
    virtual memory, CPU seconds, start time, open and maximum file descriptors."""
    with open(f"{proc}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()  # after "pid (comm)", which may hold spaces
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGESIZE")
    with open("/proc/stat") as fh:
        boot = next(float(line.split()[1]) for line in fh if line.startswith("btime "))
    # fields[0] is field 3 of proc(5): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    return {
        "virtual_memory_bytes": float(fields[20]),
        "resident_memory_bytes": float(fields[21]) * page,
        "cpu_seconds_total": (float(fields[11]) + float(fields[12])) / ticks,
        "start_time_seconds": boot + float(fields[19]) / ticks,
        "open_fds": float(len(os.listdir(f"{proc}/fd"))),
        "max_fds": _max_open_files(proc),
    }


def _max_open_files(proc: str) -> float:
    """The soft RLIMIT_NOFILE of the process (`Max open files` in /proc/<pid>/limits)."""
    with open(f"{proc}/limits") as fh:
        for line in fh:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return math.inf if soft == "unlimited" else float(soft)
    return float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


PROCESS_METRICS = (
    ("process_virtual_memory_bytes", Gauge, "Virtual memory size in bytes.", "virtual_memory_bytes"),
    ("process_resident_memory_bytes", Gauge, "Resident memory size in bytes.", "resident_memory_bytes"),
    ("process_start_time_seconds", Gauge, "Start time of the process since unix epoch in seconds.",
     "start_time_seconds"),
    ("process_cpu_seconds_total", CollectedCounter, "Total user and system CPU time spent in seconds.",
     "cpu_seconds_total"),
    ("process_open_fds", Gauge, "Number of open file descriptors.", "open_fds"),
    ("process_max_fds", Gauge, "Maximum number of open file descriptors.", "max_fds"),
)


def add_process_metrics(registry: "Registry", stats: Callable[[], dict[str, float]] = process_stats) -> None:
    """The process metrics of this process (left out where /proc cannot be read)."""
    cache: dict = {}
    lock = threading.Lock()

    def read(field: str) -> list[tuple[LabelValues, float]]:
        with lock:  # the metrics of one scrape share one read of /proc
            now = time.monotonic()
            if now - cache.get("at", -1e9) > 0.5:
                cache["stats"], cache["at"] = stats(), now
            return [((), cache["stats"][field])]

    for name, kind, help, field in PROCESS_METRICS:
        registry.add(kind(name, help, collect=lambda field=field: read(field)))


class Registry:
    """The metrics of one process, rendered together."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            try:
                samples = metric.samples()
            except Exception as exc:  # e.g. Redis down at scrape time: leave the gauge out, say why
                log.warning("metric %s not collected: %s", metric.name, exc)
                continue
            lines += metric.header() + samples
        return "\n".join(lines) + "\n"


#: The cluster-wide queue gauges: (metric name, help, field of `Queue.stats()`). The dashboard's
#: fleet page shows the same fields under the same names.
QUEUE_GAUGES = (
    ("cronium_queue_length", "Entries in the queue stream (XLEN): waiting plus being run.", "length"),
    ("cronium_queue_waiting", "Entries not yet delivered to any worker.", "waiting"),
    ("cronium_queue_pending", "Entries delivered to a worker and not yet acknowledged (XPENDING).", "pending"),
    ("cronium_queue_delayed", "Executions waiting for their retry backoff.", "delayed"),
    ("cronium_queue_dead_letters", "Entries in the dead-letter stream.", "dead_letters"),
)


def heartbeat_samples(heartbeats: Iterable[dict]) -> list[tuple[LabelValues, float]]:
    """`cronium_heartbeat_timestamp_seconds` samples of `store.owners.heartbeats()`: (owner, kind,
    host) -> the unix time of the last beat."""
    return [((hb["owner"], str(hb.get("kind", "")), str(hb.get("host", ""))), float(hb.get("t", 0)))
            for hb in heartbeats]


class CroniumMetrics:
    """Everything cronium exposes. Workers call `observe_result`; the scheduler `fired`/`skipped`."""

    def __init__(self, queue=None):
        self.registry = Registry()
        r = self.registry
        self.executions = r.add(Counter("cronium_executions_total",
                                        "Executions finished by this process, by job and final status.",
                                        ("job", "status")))
        self.phases = r.add(Histogram("cronium_phase_duration_seconds",
                                      "Duration of each lifecycle phase of the executions run by this process.",
                                      ("phase",)))
        self.running = r.add(Gauge("cronium_worker_running_executions",
                                   "Executions this worker process runs right now."))
        self.slots = r.add(Gauge("cronium_worker_concurrency", "Executions this worker process may run at once."))
        self.claimed = r.add(Counter("cronium_queue_reclaimed_total",
                                     "Queue entries this process took over from dead workers."))
        self.dead_lettered = r.add(Counter("cronium_queue_dead_lettered_total",
                                           "Queue entries this process moved to the dead-letter stream."))
        self.enqueued = r.add(Counter("cronium_scheduler_enqueued_total",
                                      "Scheduled runs enqueued by this process, by job.", ("job",)))
        self.skipped = r.add(Counter("cronium_scheduler_skipped_total",
                                     "Scheduled runs not enqueued, by job and reason (busy: concurrency policy "
                                     "forbid; missed: later than scheduler.starting_deadline).", ("job", "reason")))
        self.leader = r.add(Gauge("cronium_scheduler_leader", "1 while this process is the scheduler leader."))
        if os.path.exists("/proc/self/stat"):
            add_process_metrics(r)
        if queue is not None:
            self._add_cluster_gauges(queue)

    def _add_cluster_gauges(self, queue) -> None:
        r = self.registry
        cache: dict = {}
        lock = threading.Lock()

        def stats() -> dict:
            with lock:  # the queue gauges of one scrape share one read of the queue
                now = time.monotonic()
                if now - cache.get("at", -1e9) > 1.0:
                    cache["stats"] = queue.stats()
                    cache["at"] = now
                return cache["stats"]

        for name, help, field in QUEUE_GAUGES:
            r.add(Gauge(name, help, collect=lambda field=field: [((), float(stats()[field]))]))
        r.add(Gauge("cronium_heartbeat_timestamp_seconds",
                    "Unix time of the last heartbeat of every live cronium process (workers, schedulers, runs).",
                    ("owner", "kind", "host"), collect=lambda: heartbeat_samples(queue.store.owners.heartbeats())))

    def observe_result(self, result) -> None:
        self.executions.inc(result.job_id, result.status)
        for phase, seconds in result.timings.items():
            self.phases.observe(seconds, phase)

    def render(self) -> str:
        return self.registry.render()


class MetricsServer:
    """`GET /metrics` (and `/healthz`) on host:port, in a daemon thread."""

    def __init__(self, metrics: CroniumMetrics, host: str, port: int):
        render = metrics.render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                if self.path.split("?")[0] == "/metrics":
                    body, status, ctype = render().encode(), 200, CONTENT_TYPE
                elif self.path == "/healthz":
                    body, status, ctype = b"ok\n", 200, "text/plain"
                else:
                    body, status, ctype = b"not found: try /metrics\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # scrapes are not worth a log line each
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address
        self._thread = threading.Thread(target=self.server.serve_forever, name="cronium-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
