"""`cronium run`: one job, start to end, in this terminal."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import click
from cronium.core.color import color_enabled
from cronium.core.errors import CroniumError, UsageError
from cronium.core.model import EXIT_CODES, EXTENSION_TYPES, JOB_TYPES, Resources, Secret
from cronium.core.script_launch import script_in_image

from .options import echo_shown, escape_mode, input_option, json_option, parse_input, quiet_option, raw_option
from .run_agent import agent_wanted, run_via_agent
from .run_display import StatusLine, summary_text
from .run_sources import env_file_values, read_stdin_script, start_detached

EXIT_CODE_HELP = (
    "Exit status: the job's own exit code when it ran; 0 succeeded; "
    f"{EXIT_CODES['timed_out']} timed out; {EXIT_CODES['cancelled']} cancelled (SIGINT/SIGTERM); "
    f"{EXIT_CODES['oom_killed']} killed for exceeding its memory limit; "
    f"{EXIT_CODES['error']} setup error (the message names the phase) or the local agent ended under the job; "
    "2 bad input (nothing was created)."
)


def parse_env(items: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--env {item!r}: expected NAME=VALUE")
        env[name] = value
    return env


def parse_secret_env(names: tuple[str, ...]) -> dict[str, Secret]:
    out = {}
    for name in names:
        if name not in os.environ:
            raise UsageError(f"--secret-env {name}: no such variable in this environment",
                             hint=f"export {name}=… before running, or use --env for non-secret values")
        out[name] = Secret(os.environ[name])
    return out


def parse_memory(value: str | None) -> int | None:
    if value is None:
        return None
    from cronium.core.config import parse_size

    try:
        return parse_size(value)
    except ValueError:
        raise UsageError(f"--memory {value!r} is not a size", hint="use e.g. --memory 256m or --memory 1g") from None


def read_script(path: str, job_type: str | None) -> tuple[str, bytes, str]:
    p = Path(path)
    if job_type is None:
        job_type = EXTENSION_TYPES.get(p.suffix.lower())
        if job_type is None:
            raise UsageError(f"cannot tell the job type of {path!r} from its extension",
                             hint="pass --type python|bash|node")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"script {path!r} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"script {path!r} is a directory, not a file") from None
    except PermissionError:
        raise UsageError(f"script {path!r} is not readable (permission denied)") from None
    return job_type, data, p.name


def install_signal_handlers(cancellation) -> None:
    """SIGINT/SIGTERM cancel the job (cleanup still runs); a second signal is ignored until then."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        cancellation.cancel(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@click.command(context_settings={"ignore_unknown_options": False}, epilog=EXIT_CODE_HELP)
@click.argument("script_or_command", nargs=-1, metavar="SCRIPT | -- CMD ARGS…")
@click.option("--type", "job_type", type=click.Choice(JOB_TYPES[:3]),
              help="Script type (default: from the file extension: .py, .sh, .js).")
@click.option("--image", help="Run SCRIPT in this image (the helper is delivered with it; see docs/job-images.md), "
                               "or CMD ARGS… instead of a script.")
@input_option("The job's input, read by cronium.input().")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Environment variable for the job.")
@click.option("--env-file", "env_files", multiple=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="Environment variables from FILE in docker's format (KEY=VALUE lines, # comments, KEY alone "
                   "takes this environment's value); --env wins.")
@click.option("--secret-env", multiple=True, metavar="NAME",
              help="Pass NAME from this environment as a secret (never stored, logged or shown by inspect).")
@click.option("--timeout", type=float, help="Seconds the job may run (setup not counted).")
@click.option("--memory", metavar="SIZE", help="Memory limit, e.g. 256m (clamped to limits.max_memory).")
@click.option("--cpus", type=float, help="CPU limit, e.g. 0.5 (clamped to limits.max_cpus).")
@click.option("--pids", type=int, help="Process limit (clamped to limits.max_pids).")
@click.option("--profile", help="Security profile: default, strict, or one defined in config.")
@click.option("--namespace", help="Variable namespace.")
@click.option("--egress", is_flag=True, help="Give the job network egress (needs network.egress_allowed).")
@click.option("--executor", help="The executor that runs the job: docker (this engine) or swarm (default: config executor).")
@click.option("--placement", multiple=True, metavar="CONSTRAINT",
              help="Placement constraint for a cluster executor, e.g. node.labels.gpu==true (repeatable).")
@json_option("Print one JSON document with the result instead of the summary.")
@quiet_option("Only the job's output: no status line, no summary.")
@click.option("--detach", "-d", "detached", is_flag=True,
              help="Print the execution id and return; the job runs on in a background process "
                   "(follow it with `cronium logs -f ID`, stop it with `cronium cancel ID`).")
@raw_option
@click.option("--no-agent", is_flag=True,
              help="Run the job in this process instead of the local agent (also: config agent.enabled = false).")
@click.option("--wait-cleanup", is_flag=True,
              help="Through the agent: return only once the job's containers and network are removed, not at its "
                   "result (also: config agent.wait_cleanup = true; the one-shot path always waits).")
@click.pass_obj
def run(app, script_or_command, job_type, image, input_, env, env_files, secret_env, timeout, memory, cpus, pids,
        profile, namespace, egress, executor, placement, as_json, quiet, detached, raw, no_agent, wait_cleanup):
    """Run SCRIPT (python, bash or node) — in its job image, or in --image — or CMD in --image, as one job.
    SCRIPT `-` reads the script from stdin (then --type is required).

    The job gets its own network, a runtime-API sidecar and a token scoped to this execution;
    its stdout and stderr stream here live (on a terminal, control characters shown escaped
    unless --raw). Everything it created is removed when it ends. The job runs in the local
    agent (started in the background when none runs; see docs/agent.md) unless --no-agent; the
    command then returns at the job's result and the agent finishes the cleanup (--wait-cleanup
    waits for it).
    """
    from cronium.core.spec import validate

    spec = build_spec(script_or_command, job_type=job_type, image=image, input_=input_, env=env,
                      env_files=env_files, secret_env=secret_env, timeout=timeout, memory=memory, cpus=cpus,
                      pids=pids, profile=profile, namespace=namespace, egress=egress,
                      executor=executor, placement=placement)
    mode = escape_mode(app, raw)
    validate(spec, app.config)  # bad input: exit 2 before anything is created (the agent checks again)
    if agent_wanted(app, no_agent):
        code = run_via_agent(app, spec, mode=mode, as_json=as_json, quiet=quiet, detached=detached,
                             wait_cleanup=wait_cleanup)
        if code is not None:
            sys.exit(code)
    run_here(app, spec, mode=mode, as_json=as_json, quiet=quiet, detached=detached)


def build_spec(script_or_command, *, job_type, image, input_, env, env_files, secret_env, timeout, memory,
               cpus, pids, profile, namespace, egress, executor=None, placement=()):
    """The JobSpec of the command line (`UsageError` for bad input; nothing read twice)."""
    from cronium.core.model import JobSpec, new_execution_id

    if image and not script_in_image(script_or_command, job_type):
        if not script_or_command:
            raise UsageError("--image needs a script or a command",
                             hint="cronium run --image IMAGE SCRIPT, or cronium run --image IMAGE -- CMD ARGS…")
        spec_kwargs = dict(job_type="container", image=image, command=tuple(script_or_command),
                           job_id=f"adhoc-{Path(image).name.split(':')[0]}"[:60])
    else:
        if len(script_or_command) != 1:
            raise UsageError("give exactly one SCRIPT (or --image IMAGE -- CMD ARGS…)")
        kind, body, name = (read_stdin_script(job_type) if script_or_command[0] == "-"
                            else read_script(script_or_command[0], job_type))
        spec_kwargs = dict(job_type=kind, script=body, script_name=name, image=image,
                           job_id=f"adhoc-{Path(name).stem}"[:60])
    return JobSpec(
        input=parse_input(input_), env={**env_file_values(env_files), **parse_env(env)},
        secret_env=parse_secret_env(secret_env),
        timeout=timeout, profile=profile, namespace=namespace, egress=egress, executor=executor,
        placement=tuple(placement), resources=Resources(memory=parse_memory(memory), cpus=cpus, pids=pids),
        execution_id=new_execution_id(),
        **spec_kwargs)


def run_here(app, spec, *, mode: str, as_json: bool, quiet: bool, detached: bool) -> None:
    """The one-shot path: the job runs in this process (`--no-agent`, `agent.enabled = false`, or
    no agent could be had)."""
    from cronium.core.lifecycle import Cancellation, Orchestrator

    started = start_detached(app, spec) if detached else None  # returns in the background process only
    if detached:
        as_json, quiet = False, True
    runtime = app.runtime(console=not as_json and not detached, warm_pool=False)
    orchestrator = Orchestrator(runtime)
    cancellation = Cancellation()
    install_signal_handlers(cancellation)
    status = started or StatusLine(sys.stderr.isatty() and not quiet and not as_json,
                                      color=color_enabled(sys.stderr))

    def report(result):
        if not as_json and not quiet:
            echo_shown(summary_text(result), mode, err=True)

    watcher = None
    try:
        from cronium.core.fleet.cancel import CancelWatcher

        # `cronium cancel EXECUTION` from any host stops this run too.
        watcher = CancelWatcher(runtime.store, spec.execution_id, cancellation).start()
    except CroniumError:
        pass  # Redis is down: the lifecycle reports that itself
    try:
        result = orchestrator.run(spec, events=status, cancel=cancellation, on_result=report)
    finally:
        if watcher is not None:
            watcher.stop()
        orchestrator.close()
        runtime.close()
    if not as_json:
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_shown(json.dumps(result.as_dict(), ensure_ascii=False), mode)
    sys.exit(result.cli_exit_code)


def register(cli: click.Group) -> None:
    cli.add_command(run)
