"""`cronium stats`: CPU and memory of running jobs and their sidecars, as `docker stats --no-stream`.

It lists the running containers of this installation's executions (labels `cronium.managed`,
`cronium.installation`, `cronium.execution=exec_…`, `cronium.role` job or sidecar — a claimed pooled
sidecar or slot counts as the execution its claim record names: `core/engine_objects.py`; idle
pooled sidecars and slots are left out), asks the engine for one stats document of each (in parallel: the engine
takes about a second to measure CPU between two samples) and prints one line each. The figures come
from `cronium.core.usage`, the same arithmetic the docker executor uses for the peak figures it
keeps on the record when a job ends (`memory_peak`, `cpu_seconds`; see `cronium inspect`).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import click
from cronium.core import usage
from cronium.core.engine_objects import Claims, labels_as_claimed
from cronium.core.model import EXECUTION_ID_RE

from .display import binary_size
from .options import json_option

ROLES = ("job", "sidecar")


def running(client, installation: str, claims: Claims) -> list[dict]:
    """The running job and sidecar containers of this installation's executions (claimed pooled
    sidecars and slots included, by their claim records)."""
    found = client.api.containers(filters={"status": "running", "label": [
        "cronium.managed=true", f"cronium.installation={installation}"]})
    rows = []
    for c in found:
        labels = labels_as_claimed(c, claims)
        execution, role = labels.get("cronium.execution", ""), labels.get("cronium.role", "")
        if role in ROLES and EXECUTION_ID_RE.fullmatch(execution):
            rows.append({"execution": execution, "role": role, "container": (c.get("Names") or ["?"])[0].lstrip("/"),
                         "id": c["Id"]})
    return rows


def measure(client, row: dict) -> dict:
    """`row` with the figures of one stats document of its container (zeros if it just ended)."""
    try:
        stats = client.api.stats(row["id"], stream=False)
    except Exception:
        stats = {}
    used, limit = usage.memory_used(stats), usage.memory_limit(stats)
    return {**{k: v for k, v in row.items() if k != "id"},
            "cpu_percent": round(usage.cpu_percent(stats), 2), "memory_bytes": used,
            "memory_limit_bytes": limit, "memory_percent": round(used / limit * 100, 2) if limit else 0.0,
            "pids": usage.pids(stats), "cpu_seconds": round(usage.cpu_seconds(stats), 3)}


def job_names(runtime, executions: list[str]) -> dict[str, str]:
    """execution id -> job id, from the records (empty when the store cannot be read)."""
    try:
        summaries = runtime.store.records.summaries(executions, ("id", "job_id"))
    except Exception:
        return {}
    return {rec["id"]: rec.get("job_id") or "" for rec in summaries if rec.get("id")}


def _line(row: dict) -> str:
    memory = f"{binary_size(row['memory_bytes'])} / {binary_size(row['memory_limit_bytes'])}"
    return (f"{row['execution']:22} {(row['job'] or '-')[:24]:24} {row['role']:8} {row['cpu_percent']:>7.2f}% "
            f"{memory:>22} {row['memory_percent']:>7.2f}% {row['pids']:>5}")


@click.command()
@click.argument("targets", nargs=-1, metavar="[EXECUTION|JOB]...")
@json_option("Print a JSON list, one object per container (bytes and percents as numbers).")
@click.pass_obj
def stats(app, targets, as_json):
    """CPU and memory of running jobs and their sidecars (like `docker stats --no-stream`).

    With EXECUTION ids or JOB names, only those. When a job ends, its peak figures stay on its
    record: `cronium inspect EXECUTION` shows memory_peak and cpu_seconds.

    \b
    Examples:
      cronium stats                     # every running job and sidecar
      cronium stats nightly --json      # one job's executions, as JSON
    """
    runtime = app.runtime(read_only=True)
    rows = running(runtime.docker, runtime.installation, Claims.read_or_none(runtime.store))
    names = job_names(runtime, sorted({r["execution"] for r in rows})) if rows else {}
    for row in rows:
        row["job"] = names.get(row["execution"], "")
    if targets:
        rows = [r for r in rows if r["execution"] in targets or (r["job"] and r["job"] in targets)]
        if not rows:
            raise click.ClickException(f"no running execution matches {', '.join(targets)} (give execution ids "
                                       "or job names; `cronium ps` lists what runs)")
    with ThreadPoolExecutor(max_workers=min(16, len(rows) or 1)) as pool:
        measured = list(pool.map(lambda r: measure(runtime.docker, r), rows))
    measured.sort(key=lambda r: (r["execution"], r["role"]))
    if as_json:
        click.echo(json.dumps(measured, indent=2))
        return
    click.echo(f"{'EXECUTION':22} {'JOB':24} {'ROLE':8} {'CPU %':>8} {'MEM USAGE / LIMIT':>22} {'MEM %':>8} {'PIDS':>5}")
    for row in measured:
        click.echo(_line(row))


def register(cli: click.Group) -> None:
    cli.add_command(stats)
