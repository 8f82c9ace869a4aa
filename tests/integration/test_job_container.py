"""What the job container runs, attacked on the real engine: an image ENTRYPOINT that would echo the
secret stdin, and a script that leaves SIGTERM at its default (as PID 1 the kernel ignored it)."""
from __future__ import annotations

import io
import json
import uuid

import pytest
from integration_util import execution_id_from

pytestmark = pytest.mark.integration

#: `cat` echoes whatever is on its stdin — before the fix, the secret block with the token.
ENTRYPOINT = '["/bin/sh", "-c", "echo entrypoint-ran; cat; echo \\"args: $0 $*\\""]'


@pytest.fixture
def entrypoint_image(engine):
    """A tiny image FROM cronium/python with an ENTRYPOINT, under a test-unique tag, removed after."""
    tag = f"cronium-test/entrypoint-{uuid.uuid4().hex[:12]}:latest"
    dockerfile = f"FROM cronium/python:latest\nENTRYPOINT {ENTRYPOINT}\n"
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True, pull=False)
    yield tag
    engine.images.remove(tag, force=True)


def _stream_bytes(redis_client, execution: str) -> bytes:
    entries = redis_client.xrange(f"cronium:logs:{execution}")
    return b"".join(fields.get(b"data", b"") for _, fields in entries)


def test_image_entrypoint_never_sees_the_token(cli, entrypoint_image, redis_client, tmp_path):
    proc = cli("run", "--image", entrypoint_image, "--", "hello", "world")
    assert proc.returncode == 0, proc.stderr.decode()
    # The image's entrypoint ran, with the command as its arguments, as docker would run it ...
    assert proc.stdout == b"entrypoint-ran\nargs: hello world\n"
    execution = execution_id_from(proc.stderr)
    log_file = (tmp_path / "logs" / f"{execution}.log").read_bytes()
    stream = _stream_bytes(redis_client, execution)
    assert log_file == stream == proc.stdout
    # ... and nothing of the secret block reached the output, the log file or the Redis stream.
    for where in (proc.stdout, proc.stderr, log_file, stream):
        assert b"CRONIUM_EXECUTION_TOKEN" not in where and b"eyJ" not in where


SIGTERM_DEFAULT_JOB = """
import os, time
print(open('/proc/1/comm').read().strip(), os.getpid() != 1, flush=True)
time.sleep(600)
"""

SIGTERM_TRAP_JOB = """
trap 'echo "cleaning up after $(cat /proc/1/comm)"; exit 0' TERM
echo started
sleep 600 &
wait
"""


def test_timeout_signal_reaches_a_script_that_is_not_pid_1(cli, engine, tmp_path):
    """A script that does not handle SIGTERM: behind docker-init it dies of the SIGTERM (exit 143);
    as PID 1 it ignored it until the SIGKILL after the grace (exit 137)."""
    script = tmp_path / "slow.py"
    script.write_text(SIGTERM_DEFAULT_JOB)
    proc = cli("run", "--json", "--timeout", "2", str(script))
    result = json.loads(proc.stdout)
    assert result["status"] == "timed_out", result
    assert result["exit_code"] == 143, result  # killed by SIGTERM (128 + 15), not SIGKILL (137)
    log = (tmp_path / "logs" / f"{result['execution_id']}.log").read_bytes()
    assert log == b"docker-init True\n"


def test_a_script_that_traps_sigterm_still_gets_the_grace(cli, tmp_path):
    script = tmp_path / "trap.sh"
    script.write_text(SIGTERM_TRAP_JOB)
    proc = cli("run", "--json", "--timeout", "2", str(script))
    result = json.loads(proc.stdout)
    assert (result["status"], result["exit_code"]) == ("timed_out", 0), result
    log = (tmp_path / "logs" / f"{result['execution_id']}.log").read_bytes()
    assert log == b"started\ncleaning up after docker-init\n"

