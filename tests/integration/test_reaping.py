"""Reaping through the `reap_orphans` hook, against the real engine, Redis and iptables.

Every object here is created by the test itself, labelled with an owner on this host whose process
has exited (dead) or with this test process (alive, but not the runtime under test)."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest
from cronium.core.model import new_execution_id, pid_namespace

pytestmark = pytest.mark.integration

HOST = socket.gethostname()
PIDNS = pid_namespace()
LIVE_OWNER = f"{HOST}.{os.getpid()}-{PIDNS}.other0"  # alive (this process), not the runtime under test


def dead_owner() -> str:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{HOST}.{proc.pid}-{PIDNS}.dead00"


def labels(execution: str, owner: str, role: str) -> dict:
    return {"cronium.managed": "true", "cronium.execution": execution, "cronium.owner": owner,
            "cronium.deadline": str(int(time.time() + 3600)), "cronium.role": role}


def record(runtime, execution: str, owner: str, *, age: float = 600) -> None:
    """A live execution record (older than a heartbeat's TTL, so the record sweep judges it)."""
    created = time.time() - age
    runtime.store.records.create(execution, {"id": execution, "status": "running", "owner": owner,
                                             "created_at": created, "deadline": time.time() + 3600},
                                 created_at=created)


@pytest.fixture
def network_disabled(cronium_overrides):
    cronium_overrides["plugins.disabled"] = ["network"]


def test_the_reaper_needs_no_plugin_of_a_kind(network_disabled, cronium_runtime, cronium_config, engine):
    """With the network plugin disabled, an orphaned network is nobody's business: untouched, no
    error (the record sweep, the core's own, still marks its execution lost). With the plugin
    enabled, the same network is removed."""
    from cronium.core.plugins import create_plugin_manager
    from cronium.core.reaper import reap
    from cronium.core.runtime import Runtime
    from cronium.plugins import _docker

    execution, owner = new_execution_id(), dead_owner()
    record(cronium_runtime, execution, owner)
    name = f"cronium-net-{execution}"
    network_id = engine.api.create_network(name, internal=True, labels=labels(execution, owner, "network"))["Id"]
    try:
        report = reap(cronium_runtime)
        assert report.errors == [], report
        assert not [item for item in report.removed + report.kept if name in item], report
        assert engine.api.inspect_network(network_id)["Name"] == name
        assert execution in report.lost

        with_network = Runtime(cronium_config, pm=create_plugin_manager())
        try:
            report = reap(with_network)
        finally:
            with_network.close()
        assert f"network {name}" in report.removed, report
        assert engine.api.networks(filters={"name": name}) == []
    finally:
        _docker.remove(engine, "network", network_id, wait=0)


def test_firewall_rules_go_with_their_execution_not_with_a_listing(cronium_runtime, engine):
    """Rules whose network is gone and whose owner died are removed; the rules of a live
    execution's network stay, whatever else the sweep removes."""
    from cronium.core.reaper import reap
    from cronium.plugins import _docker, _egress

    if _egress.available() is not None:
        pytest.skip(f"no egress firewall here: {_egress.available()}")
    orphan, live = new_execution_id(), new_execution_id()
    record(cronium_runtime, orphan, dead_owner())
    record(cronium_runtime, live, LIVE_OWNER)
    network_id = engine.api.create_network(f"cronium-net-{live}", internal=True,
                                           labels=labels(live, LIVE_OWNER, "network"))["Id"]
    try:
        _egress.apply(orphan)
        _egress.apply(live)
        report = reap(cronium_runtime)
        assert f"firewall rules of {orphan}" in report.removed, report
        assert f"firewall rules of {live}" in report.kept, report
        assert _egress.tagged("INPUT", orphan) == [] and _egress.tagged("DOCKER-USER", orphan) == []
        assert _egress.tagged("INPUT", live) and _egress.tagged("DOCKER-USER", live)
        assert orphan in report.lost and live not in report.lost
    finally:
        _egress.remove(orphan)
        _egress.remove(live)
        _docker.remove(engine, "network", network_id, wait=0)
        cronium_runtime.store.records.update(live, {"status": "succeeded"})


def test_egress_rules_of_a_network_created_during_the_sweep_survive(cronium_runtime, engine):
    """An execution's network is gone and its owner died: its rules are condemned. While the sweep
    judges them, a new attempt of the execution creates its network and rules (the judgement is
    driven in steps: they appear inside its verdict). Only the old network's rules go."""
    from cronium.core.owners import SweepJudgement
    from cronium.core.reaper import reap_through_plugins
    from cronium.plugins import _docker, _egress

    if _egress.available() is not None:
        pytest.skip(f"no egress firewall here: {_egress.available()}")
    execution, created = new_execution_id(), []
    record(cronium_runtime, execution, dead_owner())

    class NewAttemptDuringTheVerdict(SweepJudgement):
        def verdict_for(self, candidate):
            if candidate == execution and not created:
                network = engine.api.create_network(f"cronium-net-{execution}", internal=True,
                                                    labels=labels(execution, LIVE_OWNER, "network"))["Id"]
                created.append(network)
                _egress.apply(execution, network)
            return super().verdict_for(candidate)

    try:
        _egress.apply(execution, "0" * 64)  # the rules of the old attempt, whose network is gone
        judge = NewAttemptDuringTheVerdict(cronium_runtime, now=time.time())
        report = reap_through_plugins(cronium_runtime, judge, dry_run=False)
        assert created, "the sweep never judged the old rules"
        left = _egress.tagged_lines(execution)
        assert sorted(_egress.network_of(line) for line in left) == [created[0][:12]] * len(_egress.rules(execution))
        assert f"firewall rules of {execution}" in report.removed, report
    finally:
        _egress.remove(execution)
        for network in created:
            _docker.remove(engine, "network", network, wait=0)
        cronium_runtime.store.records.update(execution, {"status": "succeeded"})


def test_removals_of_one_container_at_once_all_end_with_it_gone(engine, cronium_config):
    """A worker's reaper and the job's own cleanup may remove the same container at once: the
    engine answers the later ones 409 "removal already in progress". Each `_docker.remove` must
    return without an error and only once the container is gone (issue 11: a claimed slot's sidecar
    was left on the engine after `remove_execution_resources` returned)."""
    import threading

    from cronium.plugins import _docker
    from docker.errors import NotFound

    execution = new_execution_id()
    created = engine.api.create_container(cronium_config["images.python"], ["sleep", "60"],
                                          labels=labels(execution, dead_owner(), "job"))
    engine.api.start(created["Id"])
    start, outcomes = threading.Barrier(4), []

    def remove_then_look() -> None:
        start.wait()
        try:
            _docker.remove(engine, "container", created["Id"], wait=0)
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test asserts
            outcomes.append(f"raised {exc}")
            return
        try:
            engine.api.inspect_container(created["Id"])
            outcomes.append("returned while the container still existed")
        except NotFound:
            outcomes.append("gone")

    threads = [threading.Thread(target=remove_then_look) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert outcomes == ["gone"] * 4, outcomes
    finally:
        _docker.remove(engine, "container", created["Id"], wait=0)
