"""`cronium deploy` and `cronium deployments list|show|remove`."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import click
from cronium.core.errors import DeploymentInvalid


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _when_in(ts: float | None, tz_name: str) -> str:
    """A fire time in the schedule's own time zone."""
    from cronium.core.deploy.cron import ScheduleError, load_timezone

    if not ts:
        return "-"
    try:
        tz = load_timezone(tz_name)
    except ScheduleError:
        return _when(ts)
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


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
                     + (" SUSPENDED" if job.suspend else f", next {_when_in(nxt, job.timezone)}"))
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


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True,
              help="Only validate (no Redis needed); job names taken by other deployments are checked on deploy.")
@click.option("--json", "as_json", is_flag=True, help="Print what was (or would be) registered as JSON.")
@click.pass_obj
def deploy(app, files, dry_run, as_json):
    """Validate deployment FILES (TOML) and register their jobs, schedules and scripts in Redis.

    Scripts are read relative to each file and stored with the jobs, so workers on other hosts can
    run them. Deploying a deployment again replaces it (jobs no longer in the file are removed).
    Secrets are references (secret_env = {TOKEN = "env:MY_TOKEN"}), resolved on the worker when a
    job runs. On any problem — each names the file and the key — nothing is registered (exit 2).
    """
    from cronium.core.deploy.files import load_deployment

    deployments, problems = [], []
    for path in files:
        try:
            deployments.append(load_deployment(path, app.config))
        except DeploymentInvalid as exc:
            problems += exc.problems
    seen_names: dict[str, str] = {}
    seen_jobs: dict[str, str] = {}
    for d in deployments:
        if d.name in seen_names:
            problems.append(f"{d.path}: key 'deployment.name': '{d.name}' is also the name of {seen_names[d.name]}")
        seen_names[d.name] = d.path
        for job in d.jobs:
            if job in seen_jobs:
                problems.append(f"{d.path}: key 'jobs.{job}': job '{job}' is also declared in {seen_jobs[job]}")
            seen_jobs[job] = d.path
    if problems:
        raise DeploymentInvalid(problems)
    for d in deployments:
        for warning in d.warnings:
            click.echo(f"warning: {warning}", err=True)
    results = []
    if not dry_run:
        from cronium.core.deploy.registry import DeploymentRegistry

        registry = DeploymentRegistry(app.runtime().store)
        for d in deployments:
            results.append(registry.register(d))
    if as_json:
        out = [{"deployment": d.name, "file": d.path, "digest": d.digest, "dry_run": dry_run,
                "version": r.get("version") if r else None, "removed_jobs": r.get("removed_jobs", []) if r else [],
                "jobs": [describe_job(j) for j in d.jobs.values()]}
               for d, r in zip(deployments, results or [None] * len(deployments))]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    for d, r in zip(deployments, results or [None] * len(deployments)):
        if dry_run:
            click.echo(f"{d.path}: valid — deployment {d.name}, {len(d.jobs)} job(s) (dry run: nothing registered)")
        else:
            verb = "replaced" if r["replaced"] else "deployed"
            click.echo(f"{verb} {d.name} (version {r['version']}) from {d.path}: {len(d.jobs)} job(s)")
            for job in r["removed_jobs"]:
                click.echo(f"  removed job {job} (no longer in the file)")
        for job in d.jobs.values():
            sched = f"  {job.schedule}, next {_when_in(next_fire(job), job.timezone)}" if job.schedule else ""
            after = "  after " + ", ".join(f"{e.job} {e.when}" for e in job.after) if job.after else ""
            click.echo(f"  {job.name:24} {job.job_type:9}{sched}{after}" + ("  SUSPENDED" if job.suspend else ""))


@click.group()
def deployments():
    """List, show and remove registered deployments."""


@deployments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_deployments(app, as_json):
    """Every registered deployment: its jobs, version and when it was deployed."""
    from cronium.core.deploy.registry import DeploymentRegistry

    registry = DeploymentRegistry(app.runtime().store)
    metas = [registry.meta(n) for n in registry.names()]
    if as_json:
        click.echo(json.dumps(metas, indent=2, ensure_ascii=False))
        return
    if not metas:
        click.echo("no deployments (register one with `cronium deploy FILE`)")
        return
    click.echo(f"{'NAME':20} {'VERSION':>7}  {'DEPLOYED':19}  JOBS")
    for m in metas:
        click.echo(f"{m['name']:20} {m['version']:>7}  {_when(m['deployed_at']):19}  {', '.join(m['jobs'])}")


@deployments.command("show")
@click.argument("name")
@click.option("--source", is_flag=True, help="Print the deployment file as it was deployed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show_deployment(app, name, source, as_json):
    """One deployment: file, version, and each job with its schedule, next fire time and policies."""
    from cronium.core.deploy.registry import DeploymentRegistry

    store = app.runtime().store
    registry = DeploymentRegistry(store)
    meta = registry.meta(name)
    if source:
        click.echo(registry.source(name), nl=False)
        return
    jobs = [registry.job(j) for j in meta["jobs"]]
    states = {}
    for job in jobs:
        states[job.name] = store.schedules.state(job.name)
    if as_json:
        click.echo(json.dumps({**meta, "jobs": [{**describe_job(j), "schedule_state": states[j.name]} for j in jobs]},
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"deployment {meta['name']} (version {meta['version']}, deployed {_when(meta['deployed_at'])})")
    click.echo(f"file       {meta['file']}")
    if meta.get("description"):
        click.echo(f"about      {meta['description']}")
    for job in jobs:
        click.echo("")
        for line in job_lines(job):
            click.echo(line)
        state = states[job.name]
        if state.get("last_fire"):
            extra = [f"last fire {_when(float(state['last_fire']))}"]
            if state.get("skipped"):
                extra.append(f"{state['skipped']} skipped (busy)")
            if state.get("missed"):
                extra.append(f"{state['missed']} missed")
            click.echo("  scheduler  " + ", ".join(extra))


@deployments.command("remove")
@click.argument("name")
@click.pass_obj
def remove_deployment(app, name):
    """Remove deployment NAME: its jobs and schedules. Executions already queued still run."""
    from cronium.core.deploy.registry import DeploymentRegistry

    meta = DeploymentRegistry(app.runtime().store).remove(name)
    click.echo(f"removed {name}: {len(meta['jobs'])} job(s) ({', '.join(meta['jobs'])})")


def register(cli: click.Group) -> None:
    cli.add_command(deploy)
    cli.add_command(deployments)
