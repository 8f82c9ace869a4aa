"""One process with more than 100 Redis calls in flight (a worker or an in-process caller running
that many jobs): the store's connection pool must not refuse the 101st (redis-py 8 caps a pool at
100 unless told; `benchmarks scale` failed 87 of 200 jobs with "Too many connections")."""
from __future__ import annotations

import secrets
import threading

import pytest

from cronium.core.store import Store

pytestmark = pytest.mark.integration

IN_FLIGHT = 150


def test_150_blocking_calls_at_once_all_get_a_connection(redis_url):
    store = Store(redis_url)
    key = f"cronium-test:empty:{secrets.token_hex(4)}"
    barrier, failures = threading.Barrier(IN_FLIGHT), []

    def blocked_call():
        barrier.wait()
        try:
            store.redis.blpop([key], timeout=1)  # holds its connection for the whole second
        except Exception as exc:  # noqa: BLE001 - the test reports what failed
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=blocked_call) for _ in range(IN_FLIGHT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    store.redis.close()
    assert not failures, f"{len(failures)} of {IN_FLIGHT} failed, e.g. {failures[0]}"
