"""core/listing.select over an in-memory index: the same rows as a plain filter of every record,
and no more reading than a page needs (what made the list slow with 100,000 executions). The
store's `records.matching` (a Lua script) is checked against the real Redis by the list and `ps`
filter tests in tests/integration (test_dashboard.py, test_cli_everyday.py)."""
from __future__ import annotations

import random

import pytest
from cronium.core import listing


class FakeRecords:
    """The three store calls `select` makes, over a list of records, counting what is read."""

    def __init__(self, records: list[dict]):
        self.by_id = {r["id"]: r for r in records}
        self.index = sorted(records, key=lambda r: r["created_at"], reverse=True)
        self.fields_read = 0
        self.matching_calls = 0

    def window(self, *, since=None, until=None, offset=0, count=500):
        ids = [r["id"] for r in self.index if (since is None or r["created_at"] >= since)
               and (until is None or r["created_at"] < until)]
        return ids[offset:offset + count]

    def summaries(self, ids, names):
        self.fields_read += len(ids) * len(names)
        return [{n: self.by_id[i][n] for n in names if n in self.by_id[i]} for i in ids if i in self.by_id]

    def matching(self, ids, *, statuses=(), namespace=None, job=None, since=None, until=None):
        """What the store's Lua script decides inside Redis (no fields sent back)."""
        self.matching_calls += 1
        recs = [self.by_id[i] for i in ids if i in self.by_id]
        return [r["id"] for r in recs if (not statuses or r["status"] in statuses)
                and (namespace is None or r["namespace"] == namespace)
                and (job is None or job in (r["job_id"], r["job_name"]))
                and (since is None or r["created_at"] >= since) and (until is None or r["created_at"] < until)]

    def live_ids(self):
        return [i for i, r in self.by_id.items() if r["status"] == "running"]


class FakeStore:
    def __init__(self, records):
        self.records = FakeRecords(records)


def make_records(n: int) -> list[dict]:
    rnd = random.Random(7)
    statuses = ["succeeded"] * 16 + ["failed"] * 3 + ["running"]
    return [{"id": f"exec_{i:016x}", "created_at": 1000.0 + i, "status": rnd.choice(statuses),
             "namespace": rnd.choice(["a", "b", "c"]), "job_id": f"job-{rnd.randrange(10)}",
             "job_name": f"job-{i % 10}", "exit_code": 0, "attempt": 1} for i in range(n)]


def naive(records, *, statuses=(), namespace=None, job=None, limit=51):
    rows = [r for r in records if (not statuses or r["status"] in statuses)
            and (namespace is None or r["namespace"] == namespace)
            and (job is None or job in (r["job_id"], r["job_name"]))]
    return [r["id"] for r in sorted(rows, key=lambda r: r["created_at"], reverse=True)[:limit]]


@pytest.mark.parametrize("filters", [{}, {"statuses": ("failed",)}, {"namespace": "b", "job": "job-3"},
                                     {"statuses": ("failed", "running"), "namespace": "c", "job": "job-1"}])
def test_select_lists_what_a_plain_filter_of_every_record_lists(filters):
    records = make_records(3000)
    store = FakeStore(records)
    rows = listing.select(store, show_all=True, since=None, limit=51, **{"namespace": None, "job": None,
                                                                        "statuses": (), **filters})
    assert [r["id"] for r in rows] == naive(records, **filters)


def test_an_unfiltered_page_reads_only_the_records_it_shows():
    store = FakeStore(make_records(3000))
    rows = listing.select(store, show_all=True, since=None, namespace=None, job=None, statuses=(), limit=51)
    assert len(rows) == 51
    live_older = len([i for i in store.records.live_ids() if i not in {r["id"] for r in rows}])
    assert store.records.fields_read == (51 + live_older) * len(listing.FIELDS)


def test_a_filtered_page_reads_the_listed_fields_only_of_the_rows_it_keeps():
    store = FakeStore(make_records(3000))
    rows = listing.select(store, show_all=True, since=None, namespace="a", job="job-4", statuses=("failed",),
                          limit=51)
    assert store.records.fields_read == len(rows) * len(listing.FIELDS)  # the judging happened in Redis
    assert store.records.matching_calls == 3000 // listing.PAGE + 1  # one round trip a window
