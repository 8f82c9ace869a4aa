"""The execution record: one schema for everything that writes or reads `P exec:<id>` in Redis.

A record is a Redis hash. The orchestrator (lifecycle), the queue, the reaper and plugins write
fields of it; the sidecar writes only `output` and `condition` (JSON text, see sidecar/store.py,
which cannot import this module: it runs in its own image). Values are text in Redis: the fields in
`JSON_FIELDS` hold JSON, those in `NUMBER_FIELDS` a float, `exit_code` an integer, the rest plain
text. `encode` and `decode` are the only conversion between the two.

`new_record` builds the first version of a record, for `cronium run` (status `pending`) and for the
queue (status `queued`) alike, with the context the runtime API serves at `/executions/<id>/context`.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from .model import Status, dumps

#: Fields holding JSON.
JSON_FIELDS = frozenset({"spec", "timings", "input", "output", "condition", "context", "warnings", "metadata",
                         "definition", "history", "logs_truncated"})
#: Fields holding a unix time (or another float).
NUMBER_FIELDS = frozenset({"created_at", "started_at", "finished_at", "deadline", "queued_at", "claimed_at",
                           "not_before", "scheduled_for", "cpu_seconds"})
#: Fields holding an integer (`memory_peak`: bytes).
INT_FIELDS = frozenset({"exit_code", "memory_peak"})
#: Fields of one attempt: dropped when a worker runs the execution again after its owner died.
ATTEMPT_FIELDS = ("started_at", "finished_at", "exit_code", "timings", "output", "condition", "log_lines",
                  "logs_truncated", "warnings", "sidecar_state", "followups", "memory_peak", "cpu_seconds")


def encode(fields: Mapping[str, Any]) -> dict[str, str]:
    """Record fields -> the text Redis stores."""
    out = {}
    for k, v in fields.items():
        if k in JSON_FIELDS:
            out[k] = dumps(v)
        elif v is None:
            out[k] = ""
        else:
            out[k] = str(v)
    return out


def decode(raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    """A Redis hash (as redis-py returns it, bytes) -> record fields."""
    rec: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode()
        text = v.decode("utf-8", "replace")
        if key in JSON_FIELDS:
            rec[key] = _json(text)
        elif key in NUMBER_FIELDS:
            rec[key] = float(text) if text else None
        elif key in INT_FIELDS:
            rec[key] = int(text) if text not in ("", "None") else None
        else:
            rec[key] = text
    return rec


def _json(text: str) -> Any:
    import json

    return json.loads(text) if text else None


def iso(ts: float) -> str:
    """A unix time as the runtime API's ISO 8601 text (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def new_record(*, execution_id: str, job_id: str, job_name: str, job_type: str, namespace: str, status: Status,
               created_at: float, spec: Mapping[str, Any], attempt: int, input: Any = None,
               metadata: Mapping[str, Any] | None = None, started: bool = True, **extra: Any) -> dict[str, Any]:
    """The first version of an execution record. `spec` is `JobSpec.describe()` (no script, no
    secret values); `started` False leaves the context's start time empty (a queued execution);
    `extra` adds fields (owner, deadline, queue bookkeeping)."""
    meta = dict(metadata or {})
    record: dict[str, Any] = {
        "id": execution_id, "job_id": job_id, "job_name": job_name, "job_type": job_type, "namespace": namespace,
        "status": str(status), "created_at": created_at, "spec": dict(spec), "attempt": attempt,
        "context": {"executionId": execution_id, "jobId": job_id, "jobName": job_name, "jobType": job_type,
                    "namespace": namespace, "startTime": iso(created_at) if started else None, "metadata": meta},
        **extra,
    }
    if input is not None:
        record["input"] = input
    return record
