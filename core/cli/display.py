"""How several commands show things: times, execution records and deployed jobs."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime


def timestamp(ts: float) -> str:
    """Unix seconds as local time, `YYYY-MM-DD HH:MM:SS`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def when(ts: float | None) -> str:
    """Like `timestamp`, or `-` for no time."""
    if not ts:
        return "-"
    return timestamp(ts)


def ago(ts: float | None, now: float | None = None) -> str:
    """How far `ts` is from now, as docker says it: `12 seconds ago`, `3 minutes ago`, `in 2 hours`."""
    if not ts:
        return "-"
    delta = (time.time() if now is None else now) - ts
    seconds = abs(delta)
    text = "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            n = int(seconds // size)
            text = f"{n} {unit}{'s' if n != 1 else ''}"
            break
    if text == "just now":
        return text
    return f"{text} ago" if delta >= 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    """A duration for people: `850ms`, `4.2s`, `3m05s`, `2h01m`, or `-`."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def when_in(ts: float | None, tz_name: str) -> str:
    """A fire time in the schedule's own time zone."""
    from cronium.core.deploy.cron import ScheduleError, load_timezone

    if not ts:
        return "-"
    try:
        tz = load_timezone(tz_name)
    except ScheduleError:
        return when(ts)
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


# --- execution records ----------------------------------------------------------------------------

#: Record fields holding a unix time, shown as local time with how long ago.
TIME_FIELDS = ("created_at", "queued_at", "claimed_at", "not_before", "scheduled_for", "started_at", "finished_at",
               "deadline")


def human_value(value) -> str:
    """One value for people: `-` for nothing, yes/no, lists joined, mappings and the rest as JSON."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "-"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def binary_size(n: float | None) -> str:
    """Bytes as `docker stats` shows them: `512B`, `12.50MiB`, `1.94GiB`."""
    if n is None:
        return "-"
    units, i = ("B", "KiB", "MiB", "GiB", "TiB"), 0
    while abs(n) >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.0f}B" if i == 0 else f"{n:.2f}{units[i]}"


def human_record(rec: dict, now: float | None = None) -> str:
    """An execution record as `key value` lines (input and the spec left out): times as local
    time with how long ago, durations in s/ms, never a raw float."""
    return "\n".join(f"{key:12} {value}" for key, value in human_fields(rec, now))


def human_fields(rec: dict, now: float | None = None) -> list[tuple[str, str]]:
    """`human_record`'s (key, readable value) pairs, in its order (the dashboard shows them too)."""
    order = ["id", "job_id", "job_type", "namespace", "status", "exit_code", "error", "error_phase", "owner",
             *TIME_FIELDS, "duration", "timings", "memory_peak", "cpu_seconds", "output", "condition", "log_lines",
             "logs_truncated", "warnings"]
    rec = dict(rec)
    if rec.get("started_at") and rec.get("finished_at"):
        rec["duration"] = duration(rec["finished_at"] - rec["started_at"])
    pairs = []
    for key in order + sorted(k for k in rec if k not in order and k not in ("spec", "context", "input")):
        if key not in rec or rec[key] in (None, "", [], {}):
            continue
        pairs.append((key, _human_field(key, rec[key], now)))
    return pairs


def _human_field(key: str, value, now: float | None) -> str:
    if key in TIME_FIELDS and isinstance(value, (int, float)):
        return f"{timestamp(value)} ({ago(value, now)})"
    if key == "timings" and isinstance(value, dict):
        return ", ".join(f"{phase} {duration(v) if isinstance(v, (int, float)) else v}" for phase, v in value.items())
    if key == "memory_peak" and isinstance(value, int):
        return f"{binary_size(value)} (the job container's highest memory use)"
    if key == "cpu_seconds" and isinstance(value, (int, float)):
        return f"{value:.2f}s (CPU time of the job container)"
    if key == "logs_truncated":
        return "yes: the output passed logs.max_bytes; the rest was dropped"
    if key in ("output", "condition"):
        return json.dumps(value, ensure_ascii=False)
    if key == "warnings" and isinstance(value, list):
        return "; ".join(str(w) for w in value)
    return human_value(value)


_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def render_format(template: str, rec: dict) -> str:
    """`--format`: a Go-template-like text where `{{.field}}` (or `{{.timings.job}}` for a nested
    one, `{{.}}` for the whole record) is replaced by its value and `{{json .field}}` by its JSON.
    A field the record lacks gives an empty text; anything else between `{{ }}` is an error."""

    def value_of(match: re.Match) -> str:
        value: object = rec
        for part in filter(None, match.group(2).split(".")):
            value = value.get(part) if isinstance(value, dict) else None
        if match.group(1):
            return json.dumps(value, ensure_ascii=False)
        if value is None:
            return ""
        return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)

    leftover = _FIELD.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        from cronium.core.errors import UsageError

        raise UsageError(f"--format {template!r}: only {{{{.field}}}}, {{{{.a.b}}}} and {{{{json .field}}}} "
                         "are understood", hint="e.g. --format '{{.status}} {{.exit_code}}' or "
                                                "--format '{{json .timings}}'")
    return _FIELD.sub(value_of, template)


def record_summary(rec: dict) -> str:
    """The few lines `cronium submit --wait` prints about a final record."""
    lines = [f"status: {rec.get('status')}" + (f" (exit code {rec['exit_code']})" if rec.get("exit_code") is not None
                                                else "")]
    if rec.get("error"):
        lines.append(f"error: {rec['error']}")
    lines.append(f"execution: {rec['id']}")
    if rec.get("output") is not None:
        lines.append(f"output: {json.dumps(rec['output'], ensure_ascii=False)}")
    if rec.get("condition") is not None:
        lines.append(f"condition: {json.dumps(rec['condition'])}")
    return "\n".join(lines)


# --- deployed jobs --------------------------------------------------------------------------------

def next_fire(job, after: float | None = None) -> float | None:
    """The job's next fire time (unix seconds), or None when it has no schedule."""
    from cronium.core.deploy.cron import ScheduleError, next_fire_times

    if not job.schedule:
        return None
    try:
        return next_fire_times(job.schedule, job.timezone, after or time.time())[0]
    except ScheduleError:
        return None


def describe_job(job) -> dict:
    """A deployed job as shown by the CLI: everything but the script body (secrets are references)."""
    from dataclasses import asdict

    data = asdict(job)
    data["next_fire"] = next_fire(job) if not job.suspend else None
    return data


def job_lines(job) -> list[str]:
    """Human-readable lines for one deployed job."""
    what = (f"{job.job_type} script {job.script_name} ({job.script_bytes} bytes)" if job.script_digest
            else f"image {job.image}: {' '.join(job.command)}")
    lines = [f"job {job.name}" + (f" — {job.description}" if job.description else ""), f"  runs       {what}"]
    if job.image and job.script_digest:
        lines.append(f"  image      {job.image}")
    if job.schedule:
        nxt = next_fire(job)
        lines.append(f"  schedule   {job.schedule} ({job.timezone})"
                     + (" SUSPENDED" if job.suspend else f", next {when_in(nxt, job.timezone)}"))
    for edge in job.after:
        lines.append(f"  after      {edge.job} {edge.when}")
    if job.input is not None:
        lines.append(f"  input      {json.dumps(job.input, ensure_ascii=False)}")
    if job.env:
        lines.append(f"  env        {', '.join(f'{k}={v}' for k, v in sorted(job.env.items()))}")
    if job.secret_env:
        lines.append(f"  secrets    {', '.join(f'{k} from {v}' for k, v in sorted(job.secret_env.items()))}")
    limits = [f"timeout {job.timeout:g}s" if job.timeout else None,
              f"memory {job.resources.memory}" if job.resources.memory else None,
              f"cpus {job.resources.cpus:g}" if job.resources.cpus else None,
              f"pids {job.resources.pids}" if job.resources.pids else None,
              f"profile {job.profile}" if job.profile else None,
              f"namespace {job.namespace}" if job.namespace else None,
              "egress" if job.egress else None]
    if any(limits):
        lines.append("  limits     " + ", ".join(x for x in limits if x))
    policy = f"concurrency {job.concurrency}"
    if job.retries.limit:
        policy += (f", retries {job.retries.limit} (backoff {job.retries.backoff:g}s x{job.retries.factor:g}, "
                   f"max {job.retries.max_backoff:g}s, on {', '.join(job.retries.on)})")
    lines.append(f"  policy     {policy}")
    if job.plugins:
        lines.append(f"  plugins    {json.dumps(job.plugins, ensure_ascii=False)}")
    return lines
