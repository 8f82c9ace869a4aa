"""How several commands show things: times, execution records and deployed jobs."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone


def timestamp(ts: float) -> str:
    """Unix seconds as local time, `YYYY-MM-DD HH:MM:SS`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def when(ts: float | None) -> str:
    """Like `timestamp`, or `-` for no time."""
    if not ts:
        return "-"
    return timestamp(ts)


def ago(ts: float | None, now: float | None = None) -> str:
    """How long ago `ts` was, as docker says it: `12 seconds ago`, `3 minutes ago`, `2 days ago`."""
    if not ts:
        return "-"
    seconds = max((time.time() if now is None else now) - ts, 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    n = int(seconds)
    return "just now" if n == 0 else f"{n} second{'s' if n != 1 else ''} ago"


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

def human_record(rec: dict) -> str:
    """An execution record as `key value` lines (input and the spec left out)."""
    order = ["id", "job_id", "job_type", "namespace", "status", "exit_code", "error", "error_phase", "owner",
             "created_at", "started_at", "finished_at", "timings", "output", "condition", "log_lines", "warnings"]
    lines = []
    for key in order + sorted(k for k in rec if k not in order and k not in ("spec", "context", "input")):
        if key not in rec or rec[key] in (None, "", [], {}):
            continue
        value = rec[key]
        if key.endswith("_at"):
            value = timestamp(value) + f" ({value:.3f})"
        elif isinstance(value, (dict, list, bool)) or key in ("output", "condition"):
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"{key:12} {value}")
    return "\n".join(lines)


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
    from cronium.core.deploy.cron import ScheduleError, parse_schedule

    if not job.schedule:
        return None
    try:
        schedule = parse_schedule(job.schedule, job.timezone)
        return schedule.next_after(datetime.fromtimestamp(after or time.time(), timezone.utc)).timestamp()
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
