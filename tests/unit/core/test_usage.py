"""cronium.core.usage: the `docker stats` arithmetic behind `cronium stats` and the record's peak figures."""
from __future__ import annotations

from cronium.core import usage
from cronium.core.cli.display import binary_size, human_record
from cronium.core.record import decode, encode

MiB = 1024 * 1024
# The shape the engine sends on cgroup v1 (Docker 20.10), trimmed to the parts that matter.
V1 = {
    "memory_stats": {"usage": 30 * MiB, "max_usage": 48 * MiB, "limit": 512 * MiB,
                     "stats": {"total_inactive_file": 6 * MiB, "cache": 8 * MiB}},
    "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000, "percpu_usage": [1, 2]},
                  "system_cpu_usage": 1_000_000_000_000, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 998_000_000_000},
    "pids_stats": {"current": 7},
}


def test_memory_figures_leave_out_the_inactive_page_cache_and_take_the_kernels_peak():
    assert usage.memory_used(V1) == 24 * MiB
    assert usage.memory_limit(V1) == 512 * MiB
    assert usage.memory_peak(V1) == 48 * MiB
    v2 = {"memory_stats": {"usage": 10 * MiB, "limit": 64 * MiB, "stats": {"inactive_file": 1 * MiB}}}
    assert usage.memory_used(v2) == 9 * MiB and usage.memory_peak(v2) == 10 * MiB  # v2: no max_usage


def test_cpu_figures_follow_docker_stats():
    # 0.5 s of CPU in 2 s of system time over 2 CPUs: 50 % of one CPU.
    assert round(usage.cpu_percent(V1), 6) == 50.0
    assert usage.cpu_seconds(V1) == 2.5
    assert usage.pids(V1) == 7


def test_a_stopped_containers_empty_document_gives_zeros_not_errors():
    for doc in ({}, {"memory_stats": {}, "cpu_stats": {"cpu_usage": {}}, "precpu_stats": {}}):
        assert (usage.memory_used(doc), usage.memory_peak(doc), usage.memory_limit(doc), usage.pids(doc)) == (0, 0, 0, 0)
        assert usage.cpu_percent(doc) == 0.0 and usage.cpu_seconds(doc) == 0.0


def test_peak_fields_round_trip_through_the_record_and_read_well_in_inspect():
    rec = decode({k.encode(): v.encode() for k, v in encode({"memory_peak": 48 * MiB, "cpu_seconds": 2.5}).items()})
    assert rec == {"memory_peak": 48 * MiB, "cpu_seconds": 2.5}
    shown = human_record({"id": "exec_0123456789abcdef", **rec})
    assert "memory_peak  48.00MiB" in shown and "cpu_seconds  2.50s" in shown


def test_binary_size():
    assert [binary_size(n) for n in (None, 512, 1536, 12.5 * MiB, 3 * 1024 * MiB)] == \
        ["-", "512B", "1.50KiB", "12.50MiB", "3.00GiB"]


def test_the_executors_sampler_keeps_the_highest_memory_and_cpu_and_ignores_empty_documents():
    from cronium.plugins.docker_executor import UsageSampler

    sampler = UsageSampler(client=None, container_id="0" * 64)
    for doc in (V1, {"memory_stats": {"usage": 10 * MiB}, "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}}},
                {}):
        sampler.take(doc)
    assert sampler.memory_peak == 48 * MiB and sampler.cpu_seconds == 3.0


class _FakeStop:
    """Stands in for the sampler's stop event: records each wait, and is set after `rounds` waits."""

    def __init__(self, rounds: int):
        self.waits: list[float] = []
        self._rounds = rounds

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return len(self.waits) > self._rounds

    def is_set(self) -> bool:
        return len(self.waits) > self._rounds


class _CountingGate:
    def __init__(self):
        self.entered = 0

    def __enter__(self):
        self.entered += 1

    def __exit__(self, *exc):
        return False


class _StatsApi:
    def __init__(self):
        self.calls = 0

    def stats(self, container_id, stream, one_shot):
        self.calls += 1
        return V1


def test_the_sampler_waits_before_its_first_sample_then_backs_off_to_its_ceiling():
    from types import SimpleNamespace

    from cronium.plugins.docker_executor import SAMPLE_MAX_INTERVAL, UsageSampler

    api, gate = _StatsApi(), _CountingGate()
    sampler = UsageSampler(SimpleNamespace(api=api), "0" * 64, interval=1.0, max_interval=8.0, gate=gate)
    sampler._stop = _FakeStop(rounds=6)
    sampler._loop()
    # Every sample is an engine call: none at the release, then 1, 2, 4, 8, 8, 8 s apart, each
    # through the process's stats gate.
    assert sampler._stop.waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert api.calls == 6 and gate.entered == 6 and sampler.memory_peak == 48 * MiB
    assert SAMPLE_MAX_INTERVAL == 8.0

    stopped_at_once = UsageSampler(SimpleNamespace(api=api), "0" * 64)
    stopped_at_once._stop = _FakeStop(rounds=0)
    stopped_at_once._loop()
    assert api.calls == 6  # a job that ended before the first interval: no call at all


def test_stopping_the_sampler_never_waits_for_a_stats_call_in_flight():
    import threading
    from types import SimpleNamespace

    from cronium.plugins.docker_executor import UsageSampler

    in_flight, answer = threading.Event(), threading.Event()

    class SlowApi:
        def stats(self, container_id, stream, one_shot):
            in_flight.set()
            answer.wait(30)  # a busy engine
            return V1

    sampler = UsageSampler(SimpleNamespace(api=SlowApi()), "0" * 64, interval=0.01)
    sampler.start()
    assert in_flight.wait(10)
    stopped = threading.Event()
    threading.Thread(target=lambda: (sampler.stop(), stopped.set()), daemon=True).start()
    try:
        # stop() returns while the engine still has not answered (it used to join the call).
        assert stopped.wait(5), "stop() waited for the stats call in flight"
        assert sampler._thread.is_alive() and sampler.memory_peak is None
    finally:
        answer.set()
        sampler._thread.join(10)
