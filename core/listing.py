"""Which executions to list, newest first: the one query behind `cronium ps` and the dashboard.

It reads the `P executions` index (a sorted set by creation time that the store writes with each
record and removes with it) page by page from the newest entry, and the live set for executions
older than the pages it reads; never a SCAN of the keyspace. Paging goes backwards in time:
`until` (exclusive) is the creation time of the last row of the previous page.
"""
from __future__ import annotations

from cronium.core.model import LIVE_STATUSES, Status

#: The record fields a listing shows (and `ps --json` prints).
FIELDS = ("id", "job_id", "job_name", "namespace", "status", "exit_code", "error", "trigger", "attempt", "host",
          "created_at", "started_at", "finished_at")
#: What is listed without `show_all`: executions not yet ended.
NOT_ENDED = (Status.QUEUED, *LIVE_STATUSES)
#: Index entries one listing reads at most (newest first); older ones are reached with since/until.
SCAN_BUDGET = 20000
PAGE = 500


def select(store, *, show_all: bool, since: float | None, namespace: str | None, job: str | None,
           statuses: tuple[str, ...], limit: int, until: float | None = None) -> list[dict]:
    """Up to `limit` execution summaries (FIELDS), newest first, created in [since, until)."""
    wanted = set(statuses) or (None if show_all else set(NOT_ENDED))

    def keep(rec: dict) -> bool:
        created = rec.get("created_at") or 0
        return ((wanted is None or rec.get("status") in wanted)
                and (since is None or created >= since) and (until is None or created < until)
                and (namespace is None or rec.get("namespace") == namespace)
                and (job is None or job in (rec.get("job_id"), rec.get("job_name"))))

    # Unfiltered, every index entry in [since, until) is a row: read no more than the page needs.
    # Filtered, Redis judges each window (`records.matching`); FIELDS are read for the rows kept only.
    filtered = wanted is not None or namespace is not None or job is not None
    rows: list[dict] = []
    seen: set[str] = set()
    offset = 0
    while len(rows) < limit and offset < SCAN_BUDGET:
        count = PAGE if filtered else min(PAGE, limit - len(rows))
        ids = store.records.window(since=since, until=until, offset=offset, count=count)
        offset += count
        if filtered:
            kept = store.records.matching(ids, statuses=tuple(wanted or ()), namespace=namespace, job=job,
                                          since=since, until=until)
            rows += store.records.summaries(kept, FIELDS)
        else:
            rows += [r for r in store.records.summaries(ids, FIELDS) if keep(r)]
        seen.update(ids)
        if len(ids) < count:
            break
    if wanted is None or wanted & set(LIVE_STATUSES):
        older = [i for i in store.records.live_ids() if i not in seen]
        rows += [r for r in store.records.summaries(older, FIELDS) if keep(r)]
    rows.sort(key=lambda r: r.get("created_at") or 0, reverse=True)
    return rows[:limit]
