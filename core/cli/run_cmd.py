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

from .options import echo_shown, escape_mode, input_option, json_option, parse_input, quiet_option, raw_option
from .run_sources import env_file_values, read_stdin_script, start_detached

EXIT_CODE_HELP = (
    "Exit status: the job's own exit code when it ran; 0 succeeded; "
    f"{EXIT_CODES['timed_out']} timed out; {EXIT_CODES['cancelled']} cancelled (SIGINT/SIGTERM); "
    f"{EXIT_CODES['oom_killed']} killed for exceeding its memory limit; "
    f"{EXIT_CODES['error']} setup error (the message names the phase); 2 bad input (nothing was created)."
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


class StatusLine:
    """Phase progress on a terminal (stderr), one line rewritten in place; where colour is off
    (NO_COLOR, --no-color, TERM=dumb) plain lines without escape sequences instead."""

    LABELS = {"token": "token", "network": "network", "sidecar": "sidecar", "job": "running", "cleanup": "cleanup"}

    def __init__(self, enabled: bool, color: bool = True):
        self.enabled = enabled
        self.color = color
        self.done: list[str] = []
        self.open = False

    def __call__(self, phase: str, state: str) -> None:
        if not self.enabled or phase not in self.LABELS:
            return
        if not self.color:
            self._plain(phase, state)
            return
        label = self.LABELS[phase]
        if state == "start":
            text = " ".join(self.done + [f"{label}…"])
            sys.stderr.write(f"\r\x1b[2K\x1b[2mcronium: {text}\x1b[0m")
            self.open = True
            if phase == "job":  # job output follows: end the status line
                sys.stderr.write("\n")
                self.open = False
        else:
            self.done.append(f"{label} {'✓' if state == 'done' else '✗'}")
            if phase == "cleanup" and self.open:
                sys.stderr.write("\r\x1b[2K\x1b[2mcronium: cleanup ✓\x1b[0m\n")
                self.open = False
        sys.stderr.flush()

    def _plain(self, phase: str, state: str) -> None:
        label = self.LABELS[phase]
        if state != "start":
            self.done.append(f"{label} {'ok' if state == 'done' else 'failed'}")
        if (phase == "job" and state == "start") or (phase == "cleanup" and state != "start"):
            sys.stderr.write(f"cronium: {' '.join(self.done + ([label] if state == 'start' else []))}\n")
            sys.stderr.flush()


def summary_text(result) -> str:
    lines = [f"status: {result.status}" + (f" (exit code {result.exit_code})" if result.exit_code is not None else "")]
    if result.error:
        lines.append(f"error: {result.error}")
    lines.append(f"execution: {result.execution_id}")
    lines.append(f"duration: {result.duration:.2f}s")
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items() if k != "cleanup")
    lines.append(f"phases: {timings}")
    if result.output is not None:
        lines.append(f"output: {json.dumps(result.output, ensure_ascii=False)}")
    if result.condition is not None:
        lines.append(f"condition: {json.dumps(result.condition)}")
    return "\n".join(lines)


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
@click.option("--image", help="Run CMD ARGS… in this image instead of a script.")
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
@click.pass_obj
def run(app, script_or_command, job_type, image, input_, env, env_files, secret_env, timeout, memory, cpus, pids,
        profile, namespace, egress, executor, placement, as_json, quiet, detached, raw):
    """Run SCRIPT (python, bash or node) — or CMD in --image — as one job, and wait for it.
    SCRIPT `-` reads the script from stdin (then --type is required).

    The job gets its own network, a runtime-API sidecar and a token scoped to this execution;
    its stdout and stderr stream here live (on a terminal, control characters shown escaped
    unless --raw). Everything it created is removed when it ends.
    """
    from cronium.core.lifecycle import Cancellation, Orchestrator
    from cronium.core.model import JobSpec, new_execution_id

    if image:
        if not script_or_command:
            raise UsageError("--image needs a command", hint="cronium run --image IMAGE -- CMD ARGS…")
        if job_type:
            raise UsageError("--type does not apply to --image jobs")
        spec_kwargs = dict(job_type="container", image=image, command=tuple(script_or_command),
                           job_id=f"adhoc-{Path(image).name.split(':')[0]}"[:60])
    else:
        if len(script_or_command) != 1:
            raise UsageError("give exactly one SCRIPT (or --image IMAGE -- CMD ARGS…)")
        kind, body, name = (read_stdin_script(job_type) if script_or_command[0] == "-"
                            else read_script(script_or_command[0], job_type))
        spec_kwargs = dict(job_type=kind, script=body, script_name=name, job_id=f"adhoc-{Path(name).stem}"[:60])
    spec = JobSpec(
        input=parse_input(input_), env={**env_file_values(env_files), **parse_env(env)},
        secret_env=parse_secret_env(secret_env),
        timeout=timeout, profile=profile, namespace=namespace, egress=egress, executor=executor,
        placement=tuple(placement), resources=Resources(memory=parse_memory(memory), cpus=cpus, pids=pids), execution_id=new_execution_id(),
        **spec_kwargs)
    mode = escape_mode(app, raw)
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
