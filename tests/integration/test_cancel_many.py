"""Cancelling many running jobs at once (issue 11): each ends `cancelled`, and its cleanup — its
sidecar and job container removed at the same time (by the ids the engine gave them), then its
network, its Redis ACL user — leaves nothing behind, as the engine and Redis show it."""
from __future__ import annotations

import threading

import pytest
from cronium.core.lifecycle import Cancellation
from integration_util import acl_users
from queue_util import wait_for

pytestmark = pytest.mark.integration

JOBS = 20
SLEEPER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("started", flush=True)
time.sleep(600)
"""


def _running(engine, role: str) -> dict[str, str]:
    """execution id -> container id of the running containers of `role`."""
    found = engine.api.containers(filters={"label": ["cronium.managed=true", f"cronium.role={role}"],
                                           "status": "running"})
    return {c["Labels"]["cronium.execution"]: c["Id"] for c in found}


def test_cancelling_twenty_running_jobs_at_once_leaves_nothing(cronium_run, engine, redis_client, docker_leftovers):
    cancels = [Cancellation() for _ in range(JOBS)]
    results: list = [None] * JOBS
    released = threading.Semaphore(0)

    def run(i: int) -> None:
        def events(phase, state):
            if (phase, state) == ("job", "start"):
                released.release()
        results[i] = cronium_run(SLEEPER, cancel=cancels[i], events=events)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(JOBS)]
    for t in threads:
        t.start()
    try:
        for _ in range(JOBS):
            assert released.acquire(timeout=240), "not every job was released"
        jobs = wait_for(lambda: (lambda j: j if len(j) == JOBS else None)(_running(engine, "job")), 60,
                        "every job container running")
        # Positive control: what cleanup must remove is there while they run.
        assert set(_running(engine, "sidecar")) >= set(jobs)
        networks = {n["Labels"]["cronium.execution"] for n in engine.api.networks(filters={"label": "cronium.role=network"})}
        assert networks >= set(jobs)
        assert all(any(e in u for u in acl_users(redis_client)) for e in jobs)
    finally:
        for c in cancels:
            c.cancel("the test cancels them all at once")
        for t in threads:
            t.join(180)
    assert [r.status for r in results] == ["cancelled"] * JOBS, [(r.status, r.error) for r in results]
    assert {r.execution_id for r in results} == set(jobs)
    assert all(not r.warnings for r in results), [r.warnings for r in results if r.warnings]
    for execution in jobs:
        assert docker_leftovers(execution) == [], execution
    users = acl_users(redis_client)
    assert not [u for u in users if any(e in u for e in jobs)], users
