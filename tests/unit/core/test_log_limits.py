"""The per-execution log byte cap (`logs.max_bytes`): `LogBudget` and `LogPump` truncation."""
from __future__ import annotations

import threading

from cronium.core.logs import TRUNCATION_MARKER, LogBatch, LogBudget, LogPump

MARKER = TRUNCATION_MARKER.format(limit=100).encode() + b"\n"


class Collect:
    name = "collect"

    def __init__(self):
        self.batches = []

    def write(self, batches):
        self.batches += list(batches)

    def close(self, ok):
        pass

    def stored(self) -> bytes:
        return b"".join(b.raw() for b in self.batches)


def chunks_then_flush(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield 1, data[i:i + size]
        yield 1, None


def test_budget_admits_everything_below_the_limit():
    budget = LogBudget(100)
    batch = LogBatch("stdout", 0, (b"a" * 10, b"b" * 10), terminated=True)
    assert budget.admit([batch], 2) == [batch]
    assert budget.used == 22 and not budget.exhausted


def test_budget_cuts_at_the_limit_exactly_and_adds_one_marker():
    budget = LogBudget(100)
    batch = LogBatch("stdout", 0, tuple(b"x" * 29 for _ in range(10)), terminated=True)  # 300 bytes
    out = budget.admit([batch], 10)
    assert b"".join(b.raw() for b in out[:-1]) == batch.raw()[:100]
    assert out[-1].raw() == MARKER and out[-1].first_seq == 10 and out[-1].stream == "stderr"
    assert budget.exhausted
    assert budget.admit([LogBatch("stdout", 11, (b"more",), True)], 12) == []


def test_a_limit_of_zero_means_no_limit():
    budget = LogBudget(0)
    batch = LogBatch("stdout", 0, (b"y" * 10_000,), terminated=True)
    assert budget.admit([batch], 1) == [batch] and not budget.exhausted


def test_pump_stores_at_most_the_cap_plus_one_marker_and_drains_the_rest():
    output = b"".join(b"line %06d\n" % i for i in range(100_000))  # ~1.2 MB
    consumed = threading.Event()

    def chunks():
        yield from chunks_then_flush(output, 4096)
        consumed.set()  # the reader kept reading after the cap: the job never blocks on its pipe

    sink = Collect()
    pump = LogPump(chunks(), [sink], max_bytes=100)
    pump.start()
    assert pump.join(30)
    assert consumed.is_set()
    assert pump.truncated
    assert sink.stored() == output[:100] + MARKER
    assert sink.stored().count(b"[cronium] output truncated") == 1


def test_pump_without_a_cap_stores_everything():
    output = b"z" * 5000 + b"\n"
    sink = Collect()
    pump = LogPump(chunks_then_flush(output, 512), [sink])
    pump.start()
    assert pump.join(30)
    assert sink.stored() == output and not pump.truncated
