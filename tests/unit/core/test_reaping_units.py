"""Reaping without Docker or Redis: the core's judgement (core/owners.py), `reap()` through the
`reap_orphans` hook with a third-party plugin, and the network plugin's firewall rules judged at
removal time (stand-ins for the store and the engine; the real ones are in
tests/integration/test_reaping.py)."""
from __future__ import annotations

import os
import socket
import subprocess

import pytest
from cronium.core import hookimpl
from cronium.core.owners import (
    ExecutionJudgement,
    SweepJudgement,
    OwnerCheck,
    installation_id,
    parse_owner,
    pid_alive,
)
from cronium.core.model import new_owner_id, pid_namespace
from cronium.core.plugins import Hooks, create_plugin_manager
from cronium.core.reaper import ReapReport, reap, remove_execution_resources

HOST = socket.gethostname()
PIDNS = pid_namespace()
NOW = 1_000_000.0


def dead_owner() -> str:
    """An owner on this host whose process has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{HOST}.{proc.pid}-{PIDNS}.dead00"


LIVE_OWNER = f"{HOST}.{os.getppid()}-{PIDNS}.live00"  # our parent process: alive


class StandInRecords:
    def __init__(self, rows: dict[str, dict]):
        self.rows = rows
        self.marked: list[tuple[str, str, str]] = []

    def exists(self, execution_id):
        return execution_id in self.rows

    def values(self, execution_id, names):
        row = self.rows.get(execution_id, {})
        return {n: row[n] for n in names if n in row}

    def mark_lost(self, execution_id, *, owner, error, statuses):
        row = self.rows.get(execution_id)
        if row is None or row["status"] not in statuses or (owner and row["owner"] != owner):
            return False
        row["status"] = "lost"
        self.marked.append((execution_id, owner, error))
        return True

    def live(self):
        return [{"id": i, "status": r["status"], "owner": r["owner"], "created_at": r.get("created_at")}
                for i, r in self.rows.items() if r["status"] in ("pending", "running")]


class StandInOwners:
    def __init__(self, alive: set[str]):
        self._alive = alive

    def alive(self, owner):
        return owner in self._alive


class StandInStore:
    def __init__(self, rows, alive=()):
        self.records = StandInRecords(rows)
        self.owners = StandInOwners(set(alive))


class StandInRuntime:
    def __init__(self, config, store, pm=None, owner=f"{HOST}.{os.getpid()}-{PIDNS}.self00"):
        self.config, self.store, self.owner = config, store, owner
        self.pm = pm or create_plugin_manager(entry_points=[])
        self.hooks = Hooks(self.pm)
        self.sidecar_redis_url = "redis://redis:6379/0"
        self.installation = installation_id(self)


@pytest.fixture
def runtime(make_config):
    def make(rows=None, alive=(), pm=None):
        return StandInRuntime(make_config({"services.network": "cronium-test-services"}),
                              StandInStore(rows or {}, alive), pm)

    return make


def labels(execution: str, owner: str, deadline: float = NOW + 3600, **extra) -> dict:
    return {"cronium.managed": "true", "cronium.execution": execution, "cronium.owner": owner,
            "cronium.deadline": str(int(deadline)), **extra}


# --- owners ----------------------------------------------------------------------------------

def test_owner_ids_and_pids():
    assert parse_owner("web-1.example.1234-4026531836.abcdef") == ("web-1.example", 1234, "4026531836")
    assert parse_owner("web-1.example.1234.abcdef") == ("web-1.example", 1234, "")  # earlier versions
    assert parse_owner("nonsense") == ("nonsense", None, "")
    assert parse_owner(new_owner_id()) == (HOST, os.getpid(), PIDNS)
    assert pid_alive(os.getpid()) is True
    assert pid_alive(parse_owner(dead_owner()).pid) is False


def test_sweep_judgement_decides_by_owner_deadline_process_and_installation(runtime):
    dead = dead_owner()
    rows = {f"exec_{n}": {"owner": LIVE_OWNER, "status": "running"} for n in ("dead", "late", "live", "own")}
    rt = runtime(rows)
    judge = SweepJudgement(rt, now=NOW)
    assert judge.verdict(labels("exec_dead", dead)).reason == "its owner died"
    assert judge.verdict(labels("exec_late", LIVE_OWNER, deadline=NOW - 1)).reason == "its deadline passed"
    assert not judge.verdict(labels("exec_live", LIVE_OWNER))
    assert judge.verdict(labels("exec_own", rt.owner, deadline=NOW - 1)).reason == "owned by this process"
    # Not this installation's: no record here, or another installation's label.
    assert not judge.verdict(labels("exec_elsewhere", dead, deadline=NOW - 1))
    assert not judge.verdict(labels("cronium-pool-1", dead, **{"cronium.installation": "someone-else"}))
    assert judge.verdict(labels("cronium-pool-2", dead, **{"cronium.installation": judge.installation}))
    assert sorted(judge.condemned) == ["exec_dead", "exec_late"]  # only executions, for the record sweep


def test_verdict_for_a_resource_without_labels_reads_the_record(runtime):
    dead = dead_owner()
    judge = SweepJudgement(runtime({"exec_a": {"owner": dead, "status": "running", "deadline": NOW + 60},
                                    "exec_b": {"owner": LIVE_OWNER, "status": "running", "deadline": NOW + 60}}),
                           now=NOW)
    assert judge.verdict_for("exec_a").reason == "its owner died"
    assert not judge.verdict_for("exec_b")
    assert not judge.verdict_for("exec_unknown")  # no record: another installation's


def test_execution_judgement_selects_one_execution_whoever_owns_it():
    judge = ExecutionJudgement("exec_a")
    assert judge.verdict(labels("exec_a", LIVE_OWNER)) and judge.verdict_for("exec_a")
    assert not judge.verdict(labels("exec_b", dead_owner())) and not judge.verdict_for("exec_b")


# --- reap() through the hook -----------------------------------------------------------------

class FakeThings:
    """A third-party plugin with its own kind of resource ("thing"), reaped through the hook."""

    def __init__(self, things: dict[str, dict]):
        self.things = things
        self.calls: list[tuple[object, bool]] = []

    @hookimpl
    def reap_orphans(self, judge, dry_run, report, runtime):
        self.calls.append((judge, dry_run))
        for name, thing_labels in sorted(self.things.items()):
            if not judge.verdict(thing_labels):
                report.kept.append(f"thing {name}")
                continue
            if not dry_run:
                del self.things[name]
            report.removed.append(f"thing {name}")


class Broken:
    @hookimpl
    def reap_orphans(self):
        raise RuntimeError("broken plugin")


def test_reap_calls_every_plugin_with_the_judgement_and_dry_run(runtime):
    dead = dead_owner()
    things = {"a": labels("exec_a", dead), "b": labels("exec_b", LIVE_OWNER), "c": labels("pool-c", dead)}
    plugin = FakeThings(dict(things))
    pm = create_plugin_manager(entry_points=[])
    pm.register(Broken(), name="broken")
    pm.register(plugin, name="things")
    rt = runtime({"exec_a": {"owner": dead, "status": "running"}, "exec_b": {"owner": LIVE_OWNER, "status": "running"}},
                 pm=pm)

    dry = reap(rt, dry_run=True, now=NOW)
    assert isinstance(plugin.calls[0][0], SweepJudgement) and plugin.calls[0][1] is True
    assert dry.removed == ["thing a", "thing c"] and dry.kept == ["thing b"] and dry.lost == ["exec_a"]
    assert plugin.things == things and rt.store.records.marked == []  # a dry run changes nothing
    assert dry.errors == ["plugin broken failed in reap_orphans: RuntimeError: broken plugin"]

    done = reap(rt, now=NOW)
    assert plugin.calls[1][1] is False
    assert done.removed == ["thing a", "thing c"] and done.lost == ["exec_a"]
    assert plugin.things == {"b": things["b"]}
    assert rt.store.records.marked == [("exec_a", dead, "lost: its owner died")]


def test_the_record_sweep_needs_no_plugin(runtime):
    dead = dead_owner()
    rt = runtime({"exec_a": {"owner": dead, "status": "running", "created_at": NOW - 600},
                  "exec_b": {"owner": LIVE_OWNER, "status": "running", "created_at": NOW - 600}})
    report = reap(rt, now=NOW)
    assert report.as_dict() == {"removed": [], "lost": ["exec_a"], "kept": [], "errors": [], "dry_run": False}


def test_remove_execution_resources_selects_that_execution_only(runtime):
    plugin = FakeThings({"a": labels("exec_a", LIVE_OWNER), "b": labels("exec_b", dead_owner())})
    pm = create_plugin_manager(entry_points=[])
    pm.register(plugin, name="things")
    report = remove_execution_resources(runtime(pm=pm), "exec_a")
    assert isinstance(plugin.calls[0][0], ExecutionJudgement)
    assert report.removed == ["thing a"] and report.kept == ["thing b"] and report.lost == []
    assert list(plugin.things) == ["b"]


# --- firewall rules are judged when they are removed -------------------------------------------

class StandInEngine:
    """The one engine call the network plugin's reaping makes: `client.api.networks(filters)`,
    over a list of networks that the test changes."""

    def __init__(self):
        self.existing: list[dict] = []
        self.api = self

    def inspect_network(self, network_id):
        from docker.errors import NotFound

        if not any(n["Id"].startswith(network_id) for n in self.existing):
            raise NotFound(f"network {network_id} not found")
        return {}

    def networks(self, filters):
        def matches(network, label):
            key, _, value = label.partition("=")
            return key in network["Labels"] and (not value or network["Labels"][key] == value)

        return [n for n in self.existing if all(matches(n, label) for label in filters.get("label", []))
                and filters.get("name", "") in n["Name"]]


def test_egress_rules_of_a_job_that_starts_during_the_sweep_are_kept(runtime, monkeypatch):
    from cronium.plugins import _egress, network

    engine = StandInEngine()
    removed: list[str] = []
    dead = dead_owner()

    def rules_now():
        # The sweep listed the networks before this egress job existed; by the time the rules are
        # listed, its network and then its rules were created.
        engine.existing.append({"Id": "n1", "Name": "cronium-net-exec_new",
                                "Labels": {**labels("exec_new", LIVE_OWNER), "cronium.role": "network"}})
        return ["exec_gone", "exec_new"]

    monkeypatch.setattr(_egress, "available", lambda: None)
    monkeypatch.setattr(_egress, "tagged_executions", rules_now)
    monkeypatch.setattr(_egress, "tagged_lines", lambda execution: [f"-A INPUT -m comment --comment cronium:{execution}"])
    monkeypatch.setattr(_egress, "delete", lambda line: removed.append(line.rsplit(":", 1)[1]))
    rt = runtime({"exec_gone": {"owner": dead, "status": "running"},
                  "exec_new": {"owner": LIVE_OWNER, "status": "running"}})
    rt.docker = engine
    report = ReapReport()
    network.reap_orphans(judge=SweepJudgement(rt, now=NOW), dry_run=False, report=report, runtime=rt)
    assert removed == ["exec_gone"]  # its network is gone and its owner died
    assert report.removed == ["firewall rules of exec_gone"]
    assert report.kept == ["firewall rules of exec_new"]


# --- owner identity: host, pid *and* PID namespace (issue 13, item 4) ----------------------------

OTHER_PIDNS = "4026599999" if PIDNS != "4026599999" else "4026588888"


def test_an_owner_on_another_host_is_alive_while_its_heartbeat_is_fresh(runtime):
    on_other_host = f"other-host.{os.getpid()}-{PIDNS}.far000"
    gone_from_other_host = f"other-host.{os.getppid()}-{PIDNS}.gone00"
    rows = {"exec_far": {"owner": on_other_host, "status": "running"},
            "exec_gone": {"owner": gone_from_other_host, "status": "running"}}
    judge = SweepJudgement(runtime(rows, alive={on_other_host}), now=NOW)
    assert judge.verdict(labels("exec_far", on_other_host)).reason == "its owner is alive"
    assert judge.verdict(labels("exec_gone", gone_from_other_host)).reason == "its owner died"


def test_same_host_and_pid_in_another_pid_namespace_is_judged_by_its_heartbeat(runtime):
    """A worker in a container with this host's name: its pid means nothing in our process table."""
    dead_pid = parse_owner(dead_owner()).pid
    containerised = f"{HOST}.{dead_pid}-{OTHER_PIDNS}.box000"  # its pid is free here, it is alive there
    impostor = f"{HOST}.{os.getpid()}-{OTHER_PIDNS}.box111"  # our pid, another process, no heartbeat
    rows = {"exec_box": {"owner": containerised, "status": "running"},
            "exec_imp": {"owner": impostor, "status": "running"}}
    rt = runtime(rows, alive={containerised})
    judge = SweepJudgement(rt, now=NOW)
    assert judge.verdict(labels("exec_box", containerised)).reason == "its owner is alive"
    assert judge.verdict(labels("exec_imp", impostor)).reason == "its owner died"
    check = OwnerCheck(rt)
    assert not check.shares_process_table(impostor) and check.shares_process_table(rt.owner)
    assert check.alive(impostor) is False


def test_a_deadline_counts_from_the_release_not_from_before_the_set_up_gates(runtime):
    """The labels' deadline is fixed when the objects are created; a job that waited long at the
    network or sidecar-boot gate is released later. Its live owner's objects stay until the
    deadline written at release (the record's) has passed, and are never past it during set-up."""
    passed = NOW - 1  # the labels' deadline
    rows = {"exec_setup": {"owner": LIVE_OWNER, "status": "pending", "deadline": NOW - 10},
            "exec_late": {"owner": LIVE_OWNER, "status": "running", "deadline": NOW + 600},
            "exec_overdue": {"owner": LIVE_OWNER, "status": "running", "deadline": NOW - 1}}
    judge = SweepJudgement(runtime(rows), now=NOW)
    assert judge.verdict(labels("exec_setup", LIVE_OWNER, deadline=passed)).reason == "its owner is alive"
    assert judge.verdict(labels("exec_late", LIVE_OWNER, deadline=passed)).reason == "its owner is alive"
    assert judge.verdict(labels("exec_overdue", LIVE_OWNER, deadline=passed)).reason == "its deadline passed"
    assert not judge.verdict_for("exec_setup")  # an ACL user, judged by the record
    assert judge.verdict_for("exec_overdue").reason == "its deadline passed"


def test_every_attempt_has_its_own_acl_user_and_the_reaper_knows_its_execution(make_config):
    from cronium.core.model import JobSpec
    from cronium.core.spec import resolve
    from cronium.core.store.keys import Keys

    spec = JobSpec(job_type="bash", script=b"true", execution_id="exec_0123456789abcdef")
    first = resolve(spec, make_config({}), owner=f"{HOST}.1-{PIDNS}.aaaaaa").execution
    rerun = resolve(spec, make_config({}), owner=f"{HOST}.2-{PIDNS}.bbbbbb").execution
    assert first.labels["cronium.attempt"] == "1" and first.attempt_tag != rerun.attempt_tag
    keys = Keys("cronium:")
    users = {keys.acl_user(e.execution_id, e.attempt_tag) for e in (first, rerun)}
    assert len(users) == 2 and all(u.startswith(keys.acl_user("exec_")) for u in users)
    assert {keys.acl_user_execution(u) for u in users} == {"exec_0123456789abcdef"}


def test_egress_rules_are_judged_one_by_one_by_the_network_in_their_tag(runtime, monkeypatch):
    """A new attempt of an execution whose old network is gone creates its network and rules while
    the sweep judges the old rules (here: inside the judge's verdict): only the old rules go."""
    from cronium.core.owners import SweepJudgement
    from cronium.plugins import _egress, network

    engine = StandInEngine()
    old_rules = [f"-A INPUT -i crx1 -m comment --comment cronium:exec_x:{'a' * 12} -j DROP",
                 f"-A DOCKER-USER -i crx1 -m comment --comment cronium:exec_x:{'a' * 12} -j DROP"]
    new_rules = [f"-A INPUT -i crx1 -m comment --comment cronium:exec_x:{'b' * 12} -j DROP"]
    listed = list(old_rules)
    deleted: list[str] = []

    class JudgeDuringANewAttempt(SweepJudgement):
        def verdict_for(self, execution):
            if not engine.existing:  # the new attempt's network, then its rules, appear now
                engine.existing.append({"Id": "b" * 64, "Name": "cronium-net-exec_x",
                                        "Labels": {**labels("exec_x", LIVE_OWNER), "cronium.role": "network"}})
                listed.extend(new_rules)
            return super().verdict_for(execution)

    monkeypatch.setattr(_egress, "available", lambda: None)
    monkeypatch.setattr(_egress, "tagged_executions", lambda: ["exec_x"])
    monkeypatch.setattr(_egress, "tagged_lines", lambda execution: list(listed))
    monkeypatch.setattr(_egress, "delete", deleted.append)
    rt = runtime({"exec_x": {"owner": dead_owner(), "status": "running"}})
    rt.docker = engine
    report = ReapReport()
    network.reap_orphans(judge=JudgeDuringANewAttempt(rt, now=NOW), dry_run=False, report=report, runtime=rt)
    assert deleted == old_rules
    assert report.removed == ["firewall rules of exec_x"]


def test_egress_rule_tags_name_their_network():
    from cronium.plugins import _egress

    (chain, spec), *_ = _egress.rules("exec_0123456789abcdef", "f" * 64)
    assert f"cronium:exec_0123456789abcdef:{'f' * 12}" in spec
    line = "-A " + chain + " " + " ".join(spec)
    assert _egress.network_of(line) == "f" * 12
    assert _egress.network_of("-A INPUT -m comment --comment cronium:exec_0123 -j DROP") is None
