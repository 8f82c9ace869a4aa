"""Where `cronium run` takes a job from besides a script file: the script on stdin (`run -`), an
env file (`--env-file`, docker's format), and `--detach` (the run goes on in a background process).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click
from cronium.core.errors import UsageError
from cronium.core.model import JOB_TYPES, SCRIPT_EXTENSIONS

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_stdin_script(job_type: str | None) -> tuple[str, bytes, str]:
    """`cronium run -`: the script from stdin; its type must be given (there is no file name)."""
    if job_type is None:
        raise UsageError("a script read from stdin (`cronium run -`) needs --type",
                         hint=f"pass --type {'|'.join(JOB_TYPES[:3])}, "
                              "e.g. echo 'print(1)' | cronium run --type python -")
    if sys.stdin.isatty():
        raise UsageError("`cronium run -` reads the script from stdin, which is a terminal",
                         hint="pipe the script in: cronium run --type python - < job.py")
    data = sys.stdin.buffer.read()
    if not data.strip():
        raise UsageError("the script read from stdin is empty")
    return job_type, data, f"stdin{SCRIPT_EXTENSIONS[job_type]}"


def parse_env_file(path: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """`--env-file FILE` in docker's format: one `KEY=VALUE` a line (the value taken as it is, quotes
    included), `KEY` alone takes the value from this environment (left out when unset), blank lines
    and lines starting with `#` are skipped. A bad line is an error naming the file and line."""
    environ = os.environ if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --env-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--env-file {path} is not UTF-8 text") from None
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not _NAME.fullmatch(name):
            raise UsageError(f"--env-file {path} line {number}: {raw.strip()!r} is not KEY=VALUE "
                             f"({name.strip() or 'the name'!r} is not a variable name)",
                             hint="names are letters, digits and _, not starting with a digit; no spaces around =")
        if sep:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
    return env


def env_file_values(paths: tuple[str, ...]) -> dict[str, str]:
    """Every --env-file in order (a later file wins)."""
    env: dict[str, str] = {}
    for path in paths:
        env.update(parse_env_file(path))
    return env


def start_detached(app, spec):
    """`--detach`: check the spec and that Redis and the engine answer (so bad input and an
    unreachable store are reported here, exit 2 / 1), then fork. The parent waits until the child
    has written the execution's record (so `cronium logs -f ID` finds it), prints the execution id
    and exits 0. The child, in its own session with stdio on /dev/null, returns the `events`
    callback for the run, which tells the parent at the first phase."""
    from cronium.core.errors import CroniumError
    from cronium.core.spec import validate

    validate(spec, app.config)
    app.runtime().connect()
    app.close_runtime()  # the child connects afresh
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        started = os.read(read_end, 1)
        os.close(read_end)
        if not started:
            raise CroniumError(f"the background run of {spec.execution_id} ended before the job started",
                               hint=f"see `cronium inspect {spec.execution_id}`, or run it without --detach")
        click.echo(spec.execution_id)
        sys.exit(0)
    os.close(read_end)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    pending = [write_end]

    def started(phase: str, state: str) -> None:
        if pending:
            os.write(pending[0], b"1")
            os.close(pending.pop())

    return started
