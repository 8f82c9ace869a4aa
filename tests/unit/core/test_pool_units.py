"""The warm sidecar pool's sizing, bounds and draining (plugins/_sidecar_pool.py), and how the
sidecar plugin's reaper binds a claimed pooled sidecar to its execution — without Docker."""
from __future__ import annotations

import threading

import pytest


class _Api:
    def __init__(self):
        self.removed: list[str] = []

    def remove_container(self, ident, force, v):
        self.removed.append(ident)


class _Docker:
    def __init__(self):
        self.api = _Api()


class _Runtime:
    owner = "testhost.1-2.abcdef"

    def __init__(self):
        self.docker = _Docker()


def _pool(**kw):
    from cronium.plugins._sidecar_pool import SidecarPool

    args = {"min_idle": 2, "max_idle": 5, "demand_window": 10.0, "idle_timeout": 60.0, **kw}
    return SidecarPool(_Runtime(), **args)


def _fill(pool, key: str, count: int, born: float = 0.0) -> None:
    pool._idle.setdefault(key, []).extend((f"{key}-{i}", born) for i in range(count))


def test_without_demand_the_pool_wants_nothing():
    assert _pool().target("k") == 0


def test_the_target_follows_recent_demand_between_the_floor_and_the_bound():
    pool = _pool()
    pool.take("k")
    assert pool.target("k") == 2  # one request: the floor, sidecar.pool_size
    for _ in range(3):
        pool.take("k")
    assert pool.target("k") == 4  # four requests within the demand window
    for _ in range(10):
        pool.take("k")
    assert pool.target("k") == 5  # never past pool.max_idle


def test_demand_older_than_the_window_no_longer_counts_and_idle_time_drains(monkeypatch):
    import time

    pool = _pool()
    for _ in range(4):
        pool.take("k")
    now = time.monotonic()
    assert pool.target("k", now + 30) == 2  # outside the 10 s window, within the 60 s idle timeout
    assert pool.target("k", now + 61) == 0  # no request for idle_timeout: drained


def test_refill_never_starts_more_than_the_bound_across_kinds():
    pool = _pool(max_idle=3)
    started = threading.Event()
    gate = threading.Event()
    names: list[str] = []

    def create(name):
        names.append(name)
        started.set()
        gate.wait(5)
        raise RuntimeError("no engine in unit tests")

    for _ in range(10):
        pool.take("a")
        pool.take("b")
    pool.refill("a", create)
    pool.refill("b", create)
    assert sum(pool._filling.values()) == 3
    gate.set()
    pool.close()
    assert len(names) == 3


def _recording_create(names: list[str]):
    def create(name):
        names.append(name)
        raise RuntimeError("no engine in unit tests")
    return create


def test_a_release_with_an_idle_one_left_waits_for_the_jobs_end_to_top_up():
    """A replacement's boot must not compete with the job that just took a sidecar (or slot) for
    the CPU while another idle one can serve the next job: it starts at the job's end."""
    pool = _pool()
    _fill(pool, "k", 2)
    names: list[str] = []
    assert pool.take("k") == "k-0"
    pool.refill_later("exec_a", "k", _recording_create(names))
    pool.refill_if_short("exec_a")  # at the release: "k-1" is still idle
    assert pool._filling.get("k", 0) == 0 and names == []
    pool.refill_now("exec_a")  # at the job's cleanup
    pool.close()
    assert len(names) == 1  # the floor of 2: "k-1" plus one replacement


def test_a_release_that_took_the_last_idle_one_tops_up_at_once():
    pool = _pool()
    _fill(pool, "k", 1)
    names: list[str] = []
    assert pool.take("k") == "k-0"
    pool.refill_later("exec_a", "k", _recording_create(names))
    pool.refill_if_short("exec_a")  # nothing idle is left: jobs come faster than the pool refills
    pool.refill_now("exec_a")  # already done: starts nothing more
    pool.close()
    assert len(names) == 2


def test_a_release_while_other_jobs_of_the_pool_run_tops_up_at_once():
    """A busy process keeps the old timing: its pool must keep up with jobs coming in parallel."""
    pool = _pool()
    _fill(pool, "k", 3)
    names: list[str] = []
    pool.take("k"), pool.take("k")
    pool.refill_later("exec_a", "k", _recording_create(names))
    pool.refill_later("exec_b", "k", _recording_create(names))
    pool.refill_if_short("exec_a")  # "k-2" is idle, but exec_b runs too
    pool.close()
    assert len(names) == 1  # target 2 (two requests): "k-2" plus one, started at the release


def test_drain_removes_the_idle_sidecars_of_a_kind_nobody_asked_for(monkeypatch):
    import time

    pool = _pool()
    pool.take("k")
    now = time.monotonic()
    _fill(pool, "k", 2, born=now)
    assert pool.drain(now + 1) == []  # in demand: kept
    assert sorted(pool.drain(now + 61)) == ["k-0", "k-1"]  # idle for idle_timeout: removed
    assert pool.idle_count() == 0
    assert sorted(pool.runtime.docker.api.removed) == ["k-0", "k-1"]


def test_drain_trims_to_the_target_oldest_first_and_replaces_old_ones():
    import time

    from cronium.plugins._sidecar_pool import MAX_IDLE_AGE

    pool = _pool()
    pool.take("k")
    now = time.monotonic()
    pool._idle["k"] = [("old", now - MAX_IDLE_AGE - 1), ("a", now - 3), ("b", now - 2), ("c", now - 1)]
    assert pool.drain(now) == ["old", "a"]  # too old; then one above the target of 2
    assert [cid for cid, _ in pool._idle["k"]] == ["b", "c"]


def test_a_taken_sidecar_leaves_the_pool_for_good():
    pool = _pool()
    _fill(pool, "k", 1)
    assert pool.take("k") == "k-0"
    assert pool.take("k") is None


def test_close_removes_idle_sidecars_and_stops_refilling():
    pool = _pool()
    _fill(pool, "k", 2)
    pool.runtime.docker.api.containers = lambda all, filters: []
    pool.close()
    assert sorted(pool.runtime.docker.api.removed) == ["k-0", "k-1"]
    pool.take("k")
    pool.refill("k", lambda name: pytest.fail("a closed pool started a sidecar"))


def test_a_claimed_pooled_sidecar_is_judged_as_the_execution_its_claim_names():
    from cronium.core.engine_objects import Claims, labels_as_claimed

    pooled = {"Id": "c1", "Name": "cronium-runtime-exec_x", "Labels": {
        "cronium.pool": "k", "cronium.execution": "cronium-pool-0a", "cronium.owner": "pool-owner"}}
    claims = Claims(sidecars={"c1": {"execution": "exec_x", "owner": "claimer", "attempt": "a1"}})
    assert labels_as_claimed(pooled, claims)["cronium.execution"] == "exec_x"
    assert labels_as_claimed(pooled, claims)["cronium.owner"] == "claimer"
    assert labels_as_claimed(pooled, Claims())["cronium.execution"] == "cronium-pool-0a"  # idle: its pool name
    cold = {"Id": "c1", "Name": "cronium-runtime-exec_y", "Labels": {"cronium.execution": "exec_y"}}
    assert labels_as_claimed(cold, claims)["cronium.execution"] == "exec_y"  # not pooled: its own labels


def test_a_claimed_slot_part_is_its_execution_s_job_or_sidecar():
    from cronium.core.engine_objects import Claims, labels_as_claimed

    slot = {"cronium.role": "slot", "cronium.execution": "cronium-slot-0a", "cronium.owner": "holder"}
    claims = Claims(slots={"cronium-slot-0a": {"execution": "exec_x", "owner": "claimer", "attempt": "a1"}})
    job = labels_as_claimed({"Id": "j", "Labels": {**slot, "cronium.slot.part": "job"}}, claims)
    assert (job["cronium.execution"], job["cronium.owner"], job["cronium.role"]) == ("exec_x", "claimer", "job")
    side = labels_as_claimed({"Id": "s", "Labels": {**slot, "cronium.slot.part": "sidecar"}}, claims)
    assert side["cronium.role"] == "sidecar"
    idle = labels_as_claimed({"Id": "j", "Labels": {**slot, "cronium.slot.part": "job"}}, Claims())
    assert (idle["cronium.execution"], idle["cronium.role"]) == ("cronium-slot-0a", "slot")  # not claimed: as made


@pytest.mark.parametrize("key,value", [("pool.max_idle", -1), ("pool.idle_timeout", 5000.0),
                                       ("pool.demand_window", 0.0)])
def test_pool_settings_out_of_bounds_are_refused_naming_the_key(make_config, key, value):
    from cronium.core.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config({key: value})


@pytest.mark.parametrize("module, pool_name", [("sidecar", "sidecar-pool"), ("slots", "slot-pool")])
def test_the_plugins_top_up_at_the_release_only_when_short_and_otherwise_at_cleanup(module, pool_name):
    import importlib
    from types import SimpleNamespace

    plugin = importlib.import_module(f"cronium.plugins.{module}")
    calls: list[tuple[str, str]] = []
    pool = SimpleNamespace(refill_if_short=lambda e: calls.append(("if_short", e)),
                           refill_now=lambda e: calls.append(("now", e)))
    runtime = SimpleNamespace(extension_if_present=lambda name: pool if name == pool_name else None)
    execution = SimpleNamespace(execution_id="exec_a")
    plugin.job_started(execution=execution, runtime=runtime)
    plugin.cleanup(execution=execution, runtime=runtime)
    assert calls == [("if_short", "exec_a"), ("now", "exec_a")]


def test_a_new_kind_in_a_full_pool_takes_the_place_of_other_kinds_extra_idle_ones_least_recently_asked_first():
    """Slots of another profile or image are kinds of their own: a full pool must not shut a new
    kind out until the older kinds drain; no kind is taken below one idle."""
    pool = _pool(max_idle=4)
    pool.take("old")
    pool.take("busy")
    _fill(pool, "old", 2)
    _fill(pool, "busy", 2)
    names: list[str] = []
    gate = threading.Event()

    def create(name):  # still starting while "newer" asks: the two freed places are taken
        names.append(name)
        gate.wait(5)
        raise RuntimeError("no engine in unit tests")

    pool.take("new")
    pool.refill("new", create)  # wants 2 (the floor), none left in the bound
    assert [cid for cid, _ in pool._idle["old"]] == ["old-1"] and [cid for cid, _ in pool._idle["busy"]] == ["busy-1"]
    assert pool._filling["new"] == 2
    pool.take("newer")
    pool.refill("newer", create)  # every other kind holds one idle: nothing to take
    assert pool.idle_count() == 2 and pool.counts["drained"] == 2 and not pool._filling.get("newer")
    gate.set()
    pool.close()
    assert len(names) == 2
    assert {"old-0", "busy-0"} <= set(pool.runtime.docker.api.removed)
