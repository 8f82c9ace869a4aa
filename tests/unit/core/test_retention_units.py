"""Retention policy, option parsing, paging and log-file removal (no Redis: a stand-in repository
that keeps the two calls retention makes, with the store's semantics)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from cronium.core.cli.main import cli
from cronium.core.config import parse_duration
from cronium.core.errors import UsageError
from cronium.core.logs import log_file
from cronium.core.retention import RetentionPolicy, prune

FINISHED = {"succeeded", "failed", "timed_out", "oom_killed", "cancelled", "error"}


class StandInRecords:
    """An ordered index of (id, created_at, status) and the two retention calls."""

    def __init__(self, rows):
        self.rows = list(rows)

    def retention_candidates(self, *, created_before, keep_newest, offset, limit):
        by_count = max(len(self.rows) - keep_newest, 0) if keep_newest is not None else 0
        by_age = sum(1 for _, created, _ in self.rows if created_before is not None and created < created_before)
        end = min(max(by_count, by_age), offset + limit)
        return [r[0] for r in self.rows[offset:end]]

    def remove_finished(self, ids, *, dry_run=False):
        gone = [r[0] for r in self.rows if r[0] in ids and r[2] in FINISHED]
        if not dry_run:
            self.rows = [r for r in self.rows if r[0] not in gone]
        return gone


class Runtime:
    def __init__(self, config, rows):
        self.config = config
        self.store = type("S", (), {"records": StandInRecords(rows)})()


def ex(n: int) -> str:
    return f"exec_{n:016x}"


def rows(statuses):
    return [(ex(i), 1000.0 + i, status) for i, status in enumerate(statuses)]


def test_durations():
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("90m") == 5400 and parse_duration("30") == 30 and parse_duration("") == 0
    for bad in ("7 days", "-1d", "d", "1e400"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_keep_removes_only_finished_ones_beyond_the_newest(make_config):
    rt = Runtime(make_config(), rows(["succeeded", "running", "queued", "failed", "pending", "succeeded"]))
    report = prune(rt, RetentionPolicy(max_count=2))
    assert report.removed == [ex(0), ex(3)]
    assert [r[0] for r in rt.store.records.rows] == [ex(1), ex(2), ex(4), ex(5)]


def test_age_and_count_are_either_or(make_config):
    rt = Runtime(make_config(), rows(["succeeded"] * 6))
    report = prune(rt, RetentionPolicy(max_age=100, max_count=5), now=1000.0 + 100 + 3)  # age: 0..2; count: 0
    assert report.removed == [ex(0), ex(1), ex(2)]


def test_dry_run_removes_nothing(make_config):
    rt = Runtime(make_config(), rows(["succeeded"] * 4))
    report = prune(rt, RetentionPolicy(max_count=1), dry_run=True, batch=2)
    assert report.removed == [ex(0), ex(1), ex(2)] and len(rt.store.records.rows) == 4


def test_a_bounded_pass_goes_on_where_the_last_one_stopped(make_config):
    # The oldest three must stay (still queued): a pass of 3 finds nothing to remove, the next
    # one starts after them instead of looking at the same three again.
    rt = Runtime(make_config(), rows(["queued"] * 3 + ["succeeded"] * 3))
    first = prune(rt, RetentionPolicy(max_count=1), batch=3, max_pages=1)
    assert first.removed == [] and first.next_offset == 3
    second = prune(rt, RetentionPolicy(max_count=1), batch=3, max_pages=1, offset=first.next_offset)
    assert second.removed == [ex(3), ex(4)]


def test_log_files_go_with_their_records_and_symlinks_are_not_followed(make_config, tmp_path):
    cfg = make_config({"logs.dir": str(tmp_path / "logs")})
    (tmp_path / "logs").mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    log_file(cfg, ex(0)).write_text("old output")
    log_file(cfg, ex(1)).symlink_to(victim)
    log_file(cfg, ex(2)).write_text("live output")
    rt = Runtime(cfg, rows(["succeeded", "failed", "running"]))
    report = prune(rt, RetentionPolicy(max_count=1))
    assert report.removed == [ex(0), ex(1)]
    assert not log_file(cfg, ex(0)).exists() and not log_file(cfg, ex(1)).is_symlink()
    assert victim.read_text() == "keep me"
    assert log_file(cfg, ex(2)).read_text() == "live output"


def test_options_and_configured_policy(make_config):
    cfg = make_config({"retention.max_age": "", "retention.max_count": 0})
    with pytest.raises(UsageError, match="nothing to prune by"):
        RetentionPolicy.from_options(cfg, None, None)
    assert RetentionPolicy.from_options(make_config(), None, None) == RetentionPolicy(30 * 86400, 10000)
    assert RetentionPolicy.from_options(cfg, "7d", 3) == RetentionPolicy(7 * 86400, 3)


@pytest.mark.parametrize("args, words", [(["--older-than", "soon"], "not a duration"),
                                         (["--older-than", "0"], "more than 0"),
                                         (["--keep", "-1"], "negative")])
def test_bad_prune_options_are_clear_errors(args, words):
    result = CliRunner().invoke(cli, ["prune", *args])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


def test_bad_retention_config_names_the_key(make_config):
    from cronium.core.errors import ConfigError

    with pytest.raises(ConfigError, match="retention.max_age"):
        make_config({"retention.max_age": "a while"})
    with pytest.raises(ConfigError, match="logs.max_bytes"):
        make_config({"logs.max_bytes": "lots"})


# --- the managed Redis's memory limit -------------------------------------------------------------

def test_managed_redis_config_holds_maxmemory_with_noeviction():
    from cronium.core.host.services.objects import _config_text

    text = _config_text("pw", 268435456).splitlines()
    assert "maxmemory 268435456" in text and "maxmemory-policy noeviction" in text


@pytest.mark.parametrize("limits, managed, ok", [
    ({"maxmemory": 268435456, "maxmemory_policy": "noeviction", "used_memory": 1}, True, True),
    ({"maxmemory": 0, "maxmemory_policy": "noeviction", "used_memory": 1}, True, False),
    ({"maxmemory": 268435456, "maxmemory_policy": "allkeys-lru", "used_memory": 1}, True, False),
    ({"maxmemory": 0, "maxmemory_policy": "noeviction", "used_memory": 1}, False, True),
    ({"maxmemory": 0, "maxmemory_policy": "volatile-lru", "used_memory": 1}, False, False),
])
def test_doctor_checks_what_the_server_holds(make_config, limits, managed, ok):
    from cronium.core.cli.doctor_cmd import memory_check

    cfg = make_config({} if managed else {"redis.url": "redis://127.0.0.1:1/0"})
    passed, detail, fix = memory_check(cfg, limits)
    assert passed is ok
    assert ok or fix


def test_store_full_names_the_key_and_the_fix():
    from cronium.core.errors import StoreFull, StoreUnavailable

    err = StoreFull("cronium:exec:exec_0000000000000001")
    assert isinstance(err, StoreUnavailable)  # a job's final record is spooled, cleanup still runs
    assert "cronium:exec:exec_0000000000000001" in str(err) and "full" in str(err)
    assert "cronium prune" in str(err) and "services.redis_maxmemory" in str(err)


def test_keep_zero_removes_every_finished_one(make_config):
    rt = Runtime(make_config(), rows(["succeeded", "running", "failed"]))
    assert prune(rt, RetentionPolicy.from_options(make_config(), None, 0)).removed == [ex(0), ex(2)]


def test_a_full_redis_is_not_waited_for_when_flushing_the_spool(make_config):
    """Waiting does not free a full Redis (a prune does): the spool is left for later at once."""
    from cronium.core.errors import StoreFull
    from cronium.core.runtime import Runtime as RealRuntime

    calls = []

    class FullRecords:
        def update(self, execution_id, fields):
            calls.append(execution_id)
            raise StoreFull(f"cronium:exec:{execution_id}")

    rt = RealRuntime(make_config())
    rt.__dict__["store"] = type("S", (), {"records": FullRecords()})()
    rt.spool.put(ex(7), {"status": "succeeded"})
    assert rt.flush_spool(wait=1.0) is False
    assert calls == [ex(7)]  # tried once, not retried until the wait is over
    assert rt.spool.pending() == [ex(7)]  # nothing lost
