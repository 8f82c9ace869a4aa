"""The client side of the agent, without Docker or Redis: a stand-in agent in this process speaks the
protocol on the socket the client expects. The installed `cronium run` is run in a subprocess; it
must show what the agent sends exactly as the one-shot path would, and import none of docker,
redis, sanic, pluggy or jwt on the way."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cronium.core.agent import protocol
from cronium.core.config import load_config
from cronium.core.model import JobSpec, Resources, Secret

HEAVY = ("docker", "redis", "sanic", "pluggy", "jwt", "requests", "urllib3", "cryptography")
#: Standard-library modules the agent path has no use for (each cost the client CPU at start):
#: starting an agent (subprocess) only when none answers; importlib.resources (+ zipfile, tempfile,
#: shutil) to read the defaults, secrets (+ random, base64) for ids, difflib for did-you-mean hints.
NOT_ON_THE_AGENT_PATH = ("subprocess", "importlib.resources", "zipfile", "tempfile", "shutil", "secrets", "random",
                         "difflib")
CLEANUP_WARNING = "cleanup of network x failed: stand-in"
RESULT = {"execution_id": "exec_0123456789abcdef", "job_id": "adhoc-hi", "status": "failed", "exit_code": 3,
          "duration": 1.5, "started_at": 1.0, "finished_at": 2.5, "timings": {"job": 0.5}, "output": None,
          "condition": None, "error": None, "error_phase": None, "log_lines": 2, "warnings": [],
          "logs_truncated": False}


class StandInAgent:
    """Serves one `run` on `path`: hello, a phase, one line on each stream, the result, and — once
    `release` is set (as an agent sends it once its cleanup is done) — done, with a cleanup warning.
    Remembers the request it got and whether `done` went out."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.done_sent = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                send = lambda m: conn.sendall(protocol.encode(m))  # noqa: E731
                send({"t": "hello", "pid": os.getpid(), "protocol": protocol.PROTOCOL})
                request = next(protocol.messages(conn.makefile("rb")), None)
                if request is None:
                    continue
                self.requests.append(request)
                send({"t": "event", "phase": "job", "state": "start"})
                send({"t": "out", "s": "stdout", "d": protocol.b64(b"hi\n")})
                send({"t": "out", "s": "stderr", "d": protocol.b64(b"oops\n")})
                send({"t": "result", "result": RESULT, "exit": 3})
                self.release.wait(10)
                self.done_sent = True
                try:
                    send({"t": "done", "result": {**RESULT, "warnings": [CLEANUP_WARNING]}, "exit": 3})
                except OSError:
                    pass  # the client returned at the result

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    state = tmp_path / "st"
    monkeypatch.setenv("CRONIUM_STATE_DIR", str(state))
    agent = StandInAgent(protocol.socket_path(state, protocol.fingerprint(load_config())))
    yield agent
    agent.close()


CLIENT = """
import sys
from cronium.core.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as fh:
    fh.write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""


def run_client(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    modules = tmp_path / "modules.txt"
    done = subprocess.run([sys.executable, "-c", CLIENT, str(modules), *args], capture_output=True,
                          cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"}, timeout=60)
    return done, set(modules.read_text().split("\n")) if modules.exists() else set()


def test_the_agent_path_of_the_client_is_lean_and_shows_what_the_agent_sends(tmp_path, stand_in):
    (tmp_path / "hi.py").write_text("print('hi')\n")
    done, modules = run_client(tmp_path, "run", "hi.py")
    assert done.returncode == 3, done.stderr.decode()
    assert done.stdout == b"hi\n"  # stderr of the job on stderr only
    assert "oops\n" in done.stderr.decode() and "status: failed (exit code 3)" in done.stderr.decode()
    assert [r["op"] for r in stand_in.requests] == ["run"]
    assert protocol.unb64(stand_in.requests[0]["spec"]["script"]) == b"print('hi')\n"
    imported = sorted(m for m in modules if m.split(".")[0] in HEAVY or m in NOT_ON_THE_AGENT_PATH)
    assert imported == [], f"the agent path of `cronium run` imported {imported}"
    # It returned at the result: the agent had not sent `done` (its cleanup still ran).
    assert not stand_in.done_sent and CLEANUP_WARNING not in done.stderr.decode()


def test_wait_cleanup_returns_only_after_done(tmp_path, stand_in):
    (tmp_path / "hi.py").write_text("print('hi')\n")
    stand_in.release.set()
    done, _ = run_client(tmp_path, "run", "--wait-cleanup", "hi.py")
    assert done.returncode == 3, done.stderr.decode()
    assert stand_in.done_sent and f"warning: {CLEANUP_WARNING}" in done.stderr.decode()


def test_json_through_the_agent_is_the_result_document(tmp_path, stand_in):
    (tmp_path / "hi.py").write_text("print('hi')\n")
    done, _ = run_client(tmp_path, "run", "--json", "hi.py")
    assert done.returncode == 3
    assert json.loads(done.stdout) == RESULT
    assert stand_in.requests[0]["console"] is False


def test_bad_input_never_reaches_the_agent(tmp_path, stand_in):
    (tmp_path / "hi.py").write_text("print('hi')\n")
    done, _ = run_client(tmp_path, "run", "--timeout", "-5", "hi.py")
    assert done.returncode == 2, done.stderr.decode()
    assert stand_in.requests == []


def test_a_spec_survives_the_wire():
    spec = JobSpec(job_type="python", script=b"\x00\xffprint(1)", script_name="a.py", input={"k": [1, 2]},
                   env={"A": "1"}, secret_env={"S": Secret("s3cret")}, timeout=5.0,
                   resources=Resources(memory=1 << 20, cpus=0.5, pids=10), command=("x", "y"),
                   execution_id="exec_0123456789abcdef", plugin_settings={"p": {"k": 1}})
    back = protocol.spec_from_wire(json.loads(json.dumps(protocol.spec_to_wire(spec))))
    assert back.secret_env["S"].reveal() == "s3cret"
    assert {**back.__dict__, "secret_env": None} == {**spec.__dict__, "secret_env": None}


def test_the_fingerprint_follows_the_settings_that_change_a_job(tmp_path):
    base = protocol.fingerprint(load_config())
    assert protocol.fingerprint(load_config(flags={"timeout": 99})) != base
    assert protocol.fingerprint(load_config(flags={"logs.terminal_escape": "never"})) == base  # client-side
    assert protocol.fingerprint(load_config(flags={"agent.idle_timeout": 5.0})) == base
    # A relative path resolves against the working folder: then the folder counts too.
    (tmp_path / "plug").mkdir()
    relative = load_config(flags={"plugins_dir": "plug"})
    assert protocol.fingerprint(relative, cwd="/a") != protocol.fingerprint(relative, cwd="/b")
    assert protocol.fingerprint(load_config(), cwd="/a") == protocol.fingerprint(load_config(), cwd="/b")


def test_no_agent_folder_of_another_user_is_accepted(tmp_path):
    from cronium.core.errors import AgentRefused

    link = tmp_path / "agent"
    link.symlink_to("/tmp")
    with pytest.raises(AgentRefused, match="is not a folder of this user"):
        protocol.private_folder(link)
    wide = tmp_path / "wide"
    wide.mkdir(mode=0o777)
    os.chmod(wide, 0o777)
    protocol.private_folder(wide)
    assert oct(wide.stat().st_mode & 0o777) == "0o700"
