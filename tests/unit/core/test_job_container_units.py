"""What the job container runs (`docker_executor.job_argv`): the secret prelude first, then the
image's ENTRYPOINT for container jobs only. The integration test
`test_job_container.py::test_image_entrypoint_never_sees_the_token` runs it on the engine."""
from __future__ import annotations

import subprocess

import pytest
from cronium.plugins.docker_executor import SECRET_PRELUDE, job_argv

SCRIPT_COMMAND = ("/bin/sh", "-c", 'cat > "$1" && exec "$0" "$1"', "python3", "/work/job.py")


def test_script_jobs_ignore_the_image_entrypoint():
    argv = job_argv("python", SCRIPT_COMMAND, None)
    assert argv == ["/bin/sh", "-c", SECRET_PRELUDE + SCRIPT_COMMAND[2], "python3", "/work/job.py"]


def test_container_job_runs_entrypoint_then_command_after_the_prelude():
    argv = job_argv("container", ("hello", "world"), {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["ignored"]})
    assert argv == ["/bin/sh", "-c", SECRET_PRELUDE + 'exec "$@"', "sh", "/docker-entrypoint.sh", "hello", "world"]


def test_container_job_without_entrypoint_runs_its_command():
    argv = job_argv("container", ("echo", "hi"), {"Entrypoint": None, "Cmd": ["ignored"]})
    assert argv == ["/bin/sh", "-c", SECRET_PRELUDE + 'exec "$@"', "sh", "echo", "hi"]


def test_a_shell_entrypoint_gets_the_prelude_not_the_secret_block():
    """The reproduced attack: ENTRYPOINT ["/bin/sh", "-c", "cat"] echoed the secret block. With the
    prelude in front it reads the secrets first; `cat` then sees only what follows them."""
    argv = job_argv("container", ("true",), {"Entrypoint": ["/bin/sh", "-c", "cat"]})
    stdin = b"CRONIUM_EXECUTION_TOKEN=secret-token\n\nafter the block\n"
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=10)
    assert done.stdout == b"after the block\n"
    assert b"secret-token" not in done.stdout + done.stderr


def test_the_entrypoint_sees_the_secret_env_and_the_arguments():
    argv = job_argv("container", ("one", "two"),
                    {"Entrypoint": ["/bin/sh", "-c", 'echo "${CRONIUM_EXECUTION_TOKEN:+set} $0 $*"']})
    done = subprocess.run(argv, input=b"CRONIUM_EXECUTION_TOKEN=t\n\n", capture_output=True, timeout=10)
    assert done.stdout == b"set one two\n"
