"""core/fleet/metrics.py: the Prometheus text format, written by hand, parses as the format says."""
from __future__ import annotations

import re
import urllib.request

from cronium.core.fleet.metrics import (
    Counter,
    CroniumMetrics,
    Gauge,
    Histogram,
    MetricsServer,
    Registry,
)
from cronium.core.model import JobResult

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? \S+$')


def test_counter_histogram_gauge_text():
    registry = Registry()
    c = registry.add(Counter("demo_total", "A counter\nwith a newline.", ("job",)))
    h = registry.add(Histogram("demo_seconds", "A histogram.", ("phase",), buckets=(0.1, 1)))
    registry.add(Gauge("demo_gauge", "A gauge.", ("owner",), collect=lambda: [(("w\"1",), 3.5)]))
    c.inc('we"ird\\job')
    c.inc('we"ird\\job')
    h.observe(0.05, "job")
    h.observe(0.5, "job")
    h.observe(5, "job")
    text = registry.render()
    lines = text.splitlines()
    assert "# HELP demo_total A counter\\nwith a newline." in lines
    assert "# TYPE demo_seconds histogram" in lines
    assert 'demo_total{job="we\\"ird\\\\job"} 2' in lines
    assert 'demo_seconds_bucket{phase="job",le="0.1"} 1' in lines
    assert 'demo_seconds_bucket{phase="job",le="1"} 2' in lines
    assert 'demo_seconds_bucket{phase="job",le="+Inf"} 3' in lines
    assert 'demo_seconds_count{phase="job"} 3' in lines and 'demo_seconds_sum{phase="job"} 5.55' in lines
    assert 'demo_gauge{owner="w\\"1"} 3.5' in lines
    assert text.endswith("\n")
    for line in lines:
        assert line.startswith("#") or SAMPLE.match(line), line


def test_a_failing_collector_leaves_its_metric_out():
    registry = Registry()
    registry.add(Gauge("broken", "Broken.", collect=lambda: 1 / 0))
    registry.add(Counter("fine_total", "Fine."))
    assert registry.render() == "# HELP fine_total Fine.\n# TYPE fine_total counter\nfine_total 0\n"


def test_results_feed_counters_and_phase_histograms():
    metrics = CroniumMetrics()
    result = JobResult(execution_id="exec_1", job_id="report", status="succeeded", exit_code=0, started_at=0,
                       finished_at=1, timings={"network": 0.07, "job": 0.4})
    metrics.observe_result(result)
    text = metrics.render()
    assert 'cronium_executions_total{job="report",status="succeeded"} 1' in text
    assert 'cronium_phase_duration_seconds_count{phase="network"} 1' in text


def test_http_endpoint():
    metrics = CroniumMetrics()
    server = MetricsServer(metrics, "127.0.0.1", 0).start()
    try:
        host, port = server.address[:2]
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert b"# TYPE cronium_executions_total counter" in response.read()
    finally:
        server.stop()
