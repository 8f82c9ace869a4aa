"""Token lifetime and deadline count from the job's release (issue 13, item 4): a job that waited
at the sidecar-boot gate longer than its whole token lifetime still reaches its sidecar, and its
record's deadline is computed from the release."""
from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.integration

#: token lifetime = ready_timeout + timeout + stop_grace + token.grace (+1) = 22 s, plus the
#: sidecar's 5 s leeway: the gate below is held longer than that.
SHORT = {"sidecar.ready_timeout": 10, "timeout": 10, "limits.stop_grace": 1, "token.grace": 1}
GATE_HELD = 30.0


@pytest.fixture
def short_token(cronium_overrides):
    cronium_overrides.update(SHORT)


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_a_job_released_after_a_long_gate_wait_gets_a_valid_token(short_token, cronium_runtime, cronium_run):
    cfg = cronium_runtime.config
    gate = cronium_runtime.gate("sidecar-boot", cfg["sidecar.max_booting"])
    slots = [gate.acquire() for _ in range(cfg["sidecar.max_booting"])]  # every boot slot is busy
    timer = threading.Timer(GATE_HELD, lambda: [gate.release() for _ in slots])
    timer.start()
    try:
        result = cronium_run("import cronium\ncronium.set_variable('k', 1)\ncronium.output({'ok': True})\n")
    finally:
        timer.join()
    assert result.status == "succeeded", (result.error, result.warnings)
    assert result.output == {"ok": True}
    record = cronium_runtime.store.records.values(result.execution_id, ("started_at", "deadline"))
    # The deadline was written at the release: timeout + stop grace + slack after it.
    from cronium.core.spec import DEADLINE_SLACK

    assert float(record["deadline"]) == pytest.approx(float(record["started_at"]) + 10 + 1 + DEADLINE_SLACK)
