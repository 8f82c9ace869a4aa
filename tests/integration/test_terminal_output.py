"""Hostile job output meets the operator's terminal: `cronium run`, `cronium logs` and
`cronium deployments show` run under a real pseudo-terminal; the escape sequences a job (or a
deployment file) writes must arrive as visible text, never as control bytes — while the Redis
stream and the log file keep the exact bytes, and a pipe gets the exact bytes."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest
from integration_util import cronium_executable, execution_id_from

pytestmark = pytest.mark.integration

#: Retitle the terminal, clear it, an 8-bit CSI as a UTF-8 character and as a lone byte.
ATTACK = b"title \x1b]0;PWNED\x07\x1b[2J c1 \xc2\x9b2J bad \x9b end\n"
SHOWN = b"title \\x1b]0;PWNED\\x07\\x1b[2J c1 \\u009b2J bad \\x9b end\n"
ERR_ATTACK = b"err \x1b[2J\n"
JOB = f"""
import sys
sys.stdout.buffer.write({ATTACK!r})
sys.stdout.flush()
sys.stderr.buffer.write({ERR_ATTACK!r})
"""


def on_pty(args: list[str], config, cwd) -> tuple[bytes, bytes, int]:
    """Run `cronium ARGS` with stdin and stdout on a new pseudo-terminal and stderr into a pipe;
    returns (what the terminal received, with the pty's CRLF turned back into LF; stderr; exit code)."""
    master, slave = pty.openpty()
    env = {**os.environ, "CRONIUM_CONFIG": str(config)}
    proc = subprocess.Popen([cronium_executable(), *args], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                            env=env, cwd=cwd)
    os.close(slave)
    received = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal's other end has closed it
                    break
                if not data:
                    break
                received.append(data)
            elif proc.poll() is not None:
                break
        err = proc.communicate(timeout=60)[1]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return b"".join(received).replace(b"\r\n", b"\n"), err, proc.returncode


def assert_no_control_bytes(shown: bytes) -> None:
    assert b"\x1b" not in shown and b"\x07" not in shown and b"\x9b" not in shown, shown


def test_run_and_logs_escape_job_output_on_a_terminal(cli, redis_client, tmp_path):
    script = tmp_path / "evil.py"
    script.write_text(JOB)
    shown, err, code = on_pty(["run", str(script)], cli.config, tmp_path)
    assert code == 0, err.decode()
    assert_no_control_bytes(shown)
    assert shown == SHOWN
    assert ERR_ATTACK in err  # stderr went into a pipe: exact bytes there, by design
    execution = execution_id_from(err)

    # The sinks keep the exact bytes.
    stream = redis_client.xrange(f"cronium:logs:{execution}")
    assert b"".join(f[b"data"] for _, f in stream if b"data" in f and f[b"stream"] == b"stdout") == ATTACK
    # (stdout and stderr interleaved in arrival order, which the engine does not promise across streams)
    assert (tmp_path / "logs" / f"{execution}.log").read_bytes() in (ATTACK + ERR_ATTACK, ERR_ATTACK + ATTACK)

    shown, err, code = on_pty(["logs", "--stream", "stdout", execution], cli.config, tmp_path)
    assert code == 0, err.decode()
    assert_no_control_bytes(shown)
    assert shown == SHOWN

    # Positive control: the harness does see control bytes when cronium passes them (--raw) ...
    shown, err, code = on_pty(["logs", "--raw", "--stream", "stdout", execution], cli.config, tmp_path)
    assert code == 0, err.decode()
    assert shown == ATTACK
    # ... and a pipe gets the exact bytes.
    piped = cli("logs", execution)
    assert piped.returncode == 0 and piped.stdout == ATTACK and piped.stderr == ERR_ATTACK


def test_deployments_show_escapes_the_deployment_file_on_a_terminal(cli, tmp_path, redis_client):
    name = f"evil-{tmp_path.name[-8:].lower().replace('_', '-')}"
    path = tmp_path / "evil.toml"
    path.write_text(f'[deployment]\nname = "{name}"\ndescription = "\\u001b]0;PWNED\\u0007\\u001b[2J"\n\n'
                    '[jobs.quiet]\ntype = "bash"\ninline = "echo hi"\n'
                    f'env = {{ X = "\\u009b2J" }}\n')
    deployed = cli("deploy", str(path))
    assert deployed.returncode == 0, deployed.stderr.decode()
    try:
        for args in (["deployments", "show", name], ["deployments", "show", "--json", name]):
            shown, err, code = on_pty(args, cli.config, tmp_path)
            assert code == 0, err.decode()
            assert_no_control_bytes(shown)
            assert b"PWNED" in shown and b"\\u009b2J" in shown
        shown, err, code = on_pty(["deployments", "show", "--raw", name], cli.config, tmp_path)
        assert b"\x1b]0;PWNED\x07" in shown  # positive control
    finally:
        assert cli("deployments", "remove", name).returncode == 0
