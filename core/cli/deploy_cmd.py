"""`cronium deploy` and `cronium deployments list|show|remove`."""
from __future__ import annotations

import json

import click
from cronium.core.errors import DeploymentInvalid

from .completion_cmd import complete_deployment
from .display import describe_job, job_lines, next_fire, when, when_in
from .options import dry_run_option, echo_shown, escape_mode, json_option, raw_option


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@dry_run_option("Only validate (no Redis needed); job names, deployment names and namespaces taken by other "
                "deployments are checked on deploy.")
@json_option("Print what was (or would be) registered as JSON.")
@click.option("--replace", is_flag=True,
              help="Take over a deployment of the same name, or a namespace, that another file registered.")
@click.pass_obj
def deploy(app, files, dry_run, as_json, replace):
    """Validate deployment FILES (TOML) and register their jobs, schedules and scripts in Redis.

    Scripts are read relative to each file and stored with the jobs, so workers on other hosts can
    run them; a script must lie in the file's folder. Deploying a deployment again from the same
    file replaces it (jobs no longer in the file are removed); a deployment name or a namespace
    registered from another file is refused unless --replace. Secrets are references
    (secret_env = {TOKEN = "env:MY_TOKEN"}) to variables listed in worker.secret_env_allow
    (CRONIUM_* never), resolved on the worker when a job runs. On any problem — each names the file
    and the key — nothing is registered (exit 2).
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
            results.append(registry.register(d, shared_namespace=app.config["namespace"], replace=replace))
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
            sched = f"  {job.schedule}, next {when_in(next_fire(job), job.timezone)}" if job.schedule else ""
            after = "  after " + ", ".join(f"{e.job} {e.when}" for e in job.after) if job.after else ""
            click.echo(f"  {job.name:24} {job.job_type:9}{sched}{after}" + ("  SUSPENDED" if job.suspend else ""))


@click.group()
def deployments():
    """List, show and remove registered deployments."""


@deployments.command("list")
@json_option()
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
        click.echo(f"{m['name']:20} {m['version']:>7}  {when(m['deployed_at']):19}  {', '.join(m['jobs'])}")


@deployments.command("show")
@click.argument("name", shell_complete=complete_deployment)
@click.option("--source", is_flag=True, help="Print the deployment file as it was deployed.")
@json_option()
@raw_option
@click.pass_obj
def show_deployment(app, name, source, as_json, raw):
    """One deployment: file, version, and each job with its schedule, next fire time and policies.

    Deployment files may come from a less trusted user: on a terminal, control characters in them
    are shown escaped unless --raw."""
    from cronium.core.deploy.registry import DeploymentRegistry

    mode = escape_mode(app, raw)
    store = app.runtime().store
    registry = DeploymentRegistry(store)
    meta = registry.meta(name)
    if source:
        echo_shown(registry.source(name), mode, nl=False)
        return
    jobs = [registry.job(j) for j in meta["jobs"]]
    states = {job.name: store.schedules.state(job.name) for job in jobs}
    if as_json:
        echo_shown(json.dumps({**meta, "jobs": [{**describe_job(j), "schedule_state": states[j.name]} for j in jobs]},
                              indent=2, ensure_ascii=False), mode)
        return
    echo_shown("\n".join(_deployment_lines(meta, jobs, states)), mode)


def _deployment_lines(meta: dict, jobs: list, states: dict) -> list[str]:
    """`deployments show` as text lines."""
    lines = [f"deployment {meta['name']} (version {meta['version']}, deployed {when(meta['deployed_at'])})",
             f"file       {meta['file']}"]
    if meta.get("description"):
        lines.append(f"about      {meta['description']}")
    for job in jobs:
        lines.append("")
        lines.extend(job_lines(job))
        state = states[job.name]
        if state.get("last_fire"):
            extra = [f"last fire {when(float(state['last_fire']))}"]
            if state.get("skipped"):
                extra.append(f"{state['skipped']} skipped (busy)")
            if state.get("missed"):
                extra.append(f"{state['missed']} missed")
            lines.append("  scheduler  " + ", ".join(extra))
    return lines


@deployments.command("remove")
@click.argument("name", shell_complete=complete_deployment)
@click.pass_obj
def remove_deployment(app, name):
    """Remove deployment NAME: its jobs and schedules. Executions already queued still run."""
    from cronium.core.deploy.registry import DeploymentRegistry

    meta = DeploymentRegistry(app.runtime().store).remove(name)
    click.echo(f"removed {name}: {len(meta['jobs'])} job(s) ({', '.join(meta['jobs'])})")


def register(cli: click.Group) -> None:
    cli.add_command(deploy)
    cli.add_command(deployments)
