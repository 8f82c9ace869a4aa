"""core/fleet/metrics.py: a wrong number of label values raises; the process metrics of a worker
(names and meanings of prometheus_client's process collector) match what the kernel reports."""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
import urllib.request

import pytest
from cronium.core.fleet.metrics import (
    Counter,
    CroniumMetrics,
    Gauge,
    Histogram,
    MetricsServer,
    Registry,
    add_process_metrics,
    process_stats,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process metrics read /proc")


@pytest.mark.parametrize("call", [
    lambda m: m.executions.inc("report"),                       # 1 of 2
    lambda m: m.executions.inc("report", "succeeded", "extra"),  # 3 of 2
    lambda m: m.phases.observe(0.1),                            # 0 of 1
    lambda m: m.running.set(3, "unexpected"),                   # 1 of 0
])
def test_a_wrong_label_count_raises_naming_the_metric_and_its_labels(call):
    metrics = CroniumMetrics()
    with pytest.raises(ValueError, match=r"metric cronium_\w+: got \d label value\(s\).*expected \d \((job, status|phase|no labels)\)"):
        call(metrics)
    assert "label value" not in metrics.render()  # nothing half-recorded


def test_a_collector_returning_wrong_labels_is_left_out_not_rendered_wrong():
    registry = Registry()
    registry.add(Gauge("demo", "Demo.", ("owner",), collect=lambda: [(("a", "b"), 1.0)]))
    registry.add(Counter("ok_total", "Ok."))
    registry.add(Histogram("h_seconds", "H.", ("phase",)))
    assert "demo" not in registry.render() and "ok_total 0" in registry.render()


def sample(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


@linux_only
def test_process_metrics_say_what_the_kernel_says():
    registry = Registry()
    add_process_metrics(registry)
    opened = [open(os.devnull) for _ in range(20)]
    try:
        text = registry.render()
        fds = len(os.listdir("/proc/self/fd"))
    finally:
        for f in opened:
            f.close()
    for name, kind in [("process_resident_memory_bytes", "gauge"), ("process_virtual_memory_bytes", "gauge"),
                       ("process_start_time_seconds", "gauge"), ("process_cpu_seconds_total", "counter"),
                       ("process_open_fds", "gauge"), ("process_max_fds", "gauge")]:
        assert f"# TYPE {name} {kind}" in text
    assert abs(sample(text, "process_open_fds") - fds) <= 2 and sample(text, "process_open_fds") >= 20
    assert sample(text, "process_max_fds") == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    assert 1 << 20 < sample(text, "process_resident_memory_bytes") <= peak
    assert sample(text, "process_virtual_memory_bytes") >= sample(text, "process_resident_memory_bytes")
    cpu = os.times()
    assert abs(sample(text, "process_cpu_seconds_total") - (cpu.user + cpu.system)) < 0.5
    # ps(1) tells the elapsed time since our start, in whole seconds.
    elapsed = int(subprocess.run(["ps", "-o", "etimes=", "-p", str(os.getpid())], capture_output=True, text=True,
                                 check=True).stdout)
    assert abs(sample(text, "process_start_time_seconds") - (time.time() - elapsed)) <= 2


@linux_only
def test_process_metrics_read_the_process_they_are_given():
    child = subprocess.Popen(["sh", "-c", "ulimit -n 77; exec sleep 30"])
    try:
        stats = wait_for_exec(child.pid)
        assert stats["max_fds"] == 77 and stats["open_fds"] == 3  # stdin, stdout, stderr
        assert stats["start_time_seconds"] >= process_stats()["start_time_seconds"]
    finally:
        child.kill()
        child.wait()


def wait_for_exec(pid: int) -> dict:
    """process_stats of `pid` once it has exec'd sleep (its `ulimit` applied, the shell's
    close-on-exec descriptors closed)."""
    for _ in range(200):
        with open(f"/proc/{pid}/comm") as fh:
            if fh.read().strip() == "sleep" and len(os.listdir(f"/proc/{pid}/fd")) == 3:
                return process_stats(f"/proc/{pid}")
        time.sleep(0.05)
    raise AssertionError("the child never exec'd sleep")


@linux_only
def test_the_metrics_endpoint_serves_process_metrics():
    server = MetricsServer(CroniumMetrics(), "127.0.0.1", 0).start()
    try:
        host, port = server.address[:2]
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.stop()
    assert sample(text, "process_resident_memory_bytes") > 0
    assert sample(text, "process_open_fds") > 0
