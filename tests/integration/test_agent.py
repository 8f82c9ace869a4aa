"""The local agent, through the installed `cronium` executable: `cronium run` via the agent keeps
output, exit codes and --json; it returns at the result and the agent finishes the cleanup (also
on SIGTERM; killed during it → the reaper); Ctrl-C cancels only its own job; two clients share one
agent and run at once; an agent killed mid-job is reported and reaped; another uid is refused;
--no-agent is the one-shot path. One agent (one state dir, one configuration) serves the whole
module and is stopped at its end (the held-cleanup tests start one more, of their own config)."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from integration_util import cronium_executable
from queue_util import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent_home(test_redis):
    """A configuration (test Redis, no warm sidecars so that a test sees only its own job's
    resources) and a state dir of its own, short enough for a unix socket path."""
    home = Path(tempfile.mkdtemp(prefix="cra-", dir="/tmp"))
    config = home / "cronium.toml"
    config.write_text(
        f'[redis]\nurl = "{test_redis["url"]}"\nsidecar_url = "{test_redis["sidecar_url"]}"\n'
        f'[services]\nnetwork = "{test_redis["network"]}"\n'
        f'[logs]\ndir = "{home / "logs"}"\n[sidecar]\npool_size = 0\n[agent]\nidle_timeout = 300.0\n')
    # --wait-cleanup for every run here (the autouse check wants nothing left right after a test),
    # except where a test asks for the default: return at the result.
    env = {**os.environ, "CRONIUM_CONFIG": str(config), "CRONIUM_STATE_DIR": str(home / "state"),
           "CRONIUM_AGENT_ENABLED": "true", "CRONIUM_AGENT_WAIT_CLEANUP": "true", "NO_COLOR": "1"}
    yield {"dir": home, "env": env, "state": home / "state"}
    subprocess.run([cronium_executable(), "agent", "stop", "--all"], env=env, capture_output=True, timeout=120)
    _kill_agents(home / "state")
    shutil.rmtree(home, ignore_errors=True)


def _kill_agents(state: Path) -> None:
    """Whatever `agent stop` could not stop (a test failed half-way) is killed."""
    out = subprocess.run(["pgrep", "-f", "cronium.core.agent"], capture_output=True, text=True).stdout.split()
    for pid in out:
        try:
            if str(state) in Path(f"/proc/{pid}/environ").read_text(errors="replace"):
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture
def acli(agent_home):
    def run(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([cronium_executable(), *args], env={**agent_home["env"], **kwargs.pop("env", {})},
                              capture_output=True, timeout=timeout, cwd=agent_home["dir"], **kwargs)
    return run


@pytest.fixture
def apopen(agent_home):
    procs = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([cronium_executable(), *args], env=agent_home["env"], cwd=agent_home["dir"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def script(agent_home, name: str, text: str) -> str:
    path = agent_home["dir"] / name
    path.write_text(text)
    return str(path)


def agent_status(acli) -> dict:
    out = acli("agent", "status", "--json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def test_run_through_the_agent_keeps_output_exit_code_and_json(acli, agent_home):
    path = script(agent_home, "both.py", 'import sys\nprint("to stdout")\nprint("to stderr", file=sys.stderr)\n'
                                         'sys.exit(3)\n')
    out = acli("run", path)
    assert out.returncode == 3, out.stderr.decode()
    assert out.stdout == b"to stdout\n"  # stderr never lands on stdout
    assert "to stderr\n" in out.stderr.decode() and "status: failed (exit code 3)" in out.stderr.decode()
    status = agent_status(acli)
    assert status["running"] and status["jobs"] == 0
    # The job ran in the agent: its record's owner is the agent, not the short-lived client.
    execution = next(line.split()[1] for line in out.stderr.decode().splitlines() if line.startswith("execution:"))
    record = json.loads(acli("inspect", execution, "--json").stdout)
    assert record["owner"] == status["owner"]
    as_json = acli("run", "--json", path)
    assert as_json.returncode == 3
    result = json.loads(as_json.stdout)
    assert (result["status"], result["exit_code"]) == ("failed", 3)
    bad = acli("run", "--memory", "lots", path)  # bad input: exit 2, nothing sent to the agent
    assert bad.returncode == 2 and "--memory 'lots' is not a size" in bad.stderr.decode()


def test_detach_returns_at_once_and_the_agent_runs_the_job_on(acli, agent_home):
    path = script(agent_home, "later.py", 'import time\ntime.sleep(1)\nprint("finished later")\n')
    out = acli("run", "--detach", path)
    assert out.returncode == 0, out.stderr.decode()
    execution = out.stdout.decode().strip()
    assert execution.startswith("exec_")

    def ended():
        record = json.loads(acli("inspect", execution, "--json").stdout)
        return record if record["status"] not in ("pending", "running") else None

    assert wait_for(ended, 90, "the detached job to end")["status"] == "succeeded"
    assert acli("logs", execution).stdout == b"finished later\n"


def test_two_clients_run_at_once_in_one_agent(acli, apopen, agent_home):
    # Each job waits for the other's variable: run one after the other, both would time out.
    tag = os.urandom(4).hex()
    body = ('import time, cronium\nme, other = "{me}", "{other}"\ncronium.set_variable(me, 1)\n'
            'for _ in range(600):\n    if cronium.get_variable(other):\n        print("met", other); break\n'
            '    time.sleep(0.1)\nelse:\n    raise SystemExit("never met " + other)\n')
    a = apopen("run", "-q", "--timeout", "60", script(agent_home, "a.py", body.format(me=f"a{tag}", other=f"b{tag}")))
    b = apopen("run", "-q", "--timeout", "60", script(agent_home, "b.py", body.format(me=f"b{tag}", other=f"a{tag}")))
    out_a, err_a = a.communicate(timeout=120)
    out_b, err_b = b.communicate(timeout=120)
    assert (a.returncode, b.returncode) == (0, 0), (err_a.decode(), err_b.decode())
    assert out_a == f"met b{tag}\n".encode() and out_b == f"met a{tag}\n".encode()
    assert len(list((agent_home["state"] / "agent").glob("*.sock"))) == 1  # one agent served both


def _wait_line(proc: subprocess.Popen, text: bytes) -> bytes:
    line = proc.stdout.readline()
    assert text in line, (line, proc.stderr.read() if proc.poll() is not None else b"")
    return line


def test_ctrl_c_cancels_only_its_own_job(apopen, agent_home):
    sleeper = script(agent_home, "sleeper.py", 'import time\nprint("sleeping", flush=True)\ntime.sleep(120)\n')
    other = script(agent_home, "other.py", 'import time\nprint("started", flush=True)\ntime.sleep(4)\n'
                                           'print("other done")\n')
    a = apopen("run", sleeper)
    b = apopen("run", other)
    _wait_line(a, b"sleeping")
    _wait_line(b, b"started")
    a.send_signal(signal.SIGINT)
    _, err_a = a.communicate(timeout=90)
    assert a.returncode == 130, err_a.decode()
    assert "status: cancelled" in err_a.decode() and "received SIGINT" in err_a.decode()
    out_b, err_b = b.communicate(timeout=90)
    assert b.returncode == 0, err_b.decode()
    assert out_b == b"other done\n"


def test_agent_killed_mid_job_is_reported_and_reaped(acli, apopen, agent_home, engine):
    path = script(agent_home, "id.py", 'import os, time\nprint(os.environ["CRONIUM_EXECUTION_ID"], flush=True)\n'
                                       'time.sleep(120)\n')
    client = apopen("run", path)
    execution = _wait_line(client, b"exec_").decode().strip()
    label = {"label": f"cronium.execution={execution}"}
    assert engine.api.containers(filters=label)  # the job runs
    os.kill(agent_status(acli)["pid"], signal.SIGKILL)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 125, err.decode()
    assert "the cronium agent (pid" in err.decode() and f"ended while it ran {execution}" in err.decode()
    assert engine.api.containers(all=True, filters=label)  # left behind until the reaper runs
    gc = acli("gc")
    assert gc.returncode == 0, gc.stderr.decode()
    assert engine.api.containers(all=True, filters=label) == []
    assert engine.api.networks(filters=label) == []
    assert json.loads(acli("inspect", execution, "--json").stdout)["status"] == "lost"


def _as_nobody(fn) -> tuple[int, str]:
    """Run fn() in a forked child as uid `nobody`; (exit status, what it wrote)."""
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, try, report
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write_end, f"ok: {fn()}".encode())
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode())
            os._exit(1)
    os.close(write_end)
    text = b""
    while chunk := os.read(read_end, 65536):
        text += chunk
    os.close(read_end)
    return os.waitpid(pid, 0)[1], text.decode()


def test_another_uid_is_refused(acli, agent_home):
    from cronium.core.agent import client

    assert acli("agent", "start").returncode == 0
    sock = Path(agent_status(acli)["socket"])
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    status, said = _as_nobody(lambda: client.query(sock, "status"))
    assert status != 0 and "AgentRefused: permission denied on the agent socket" in said, said
    # Attack: the folder and the socket opened to everyone. The kernel's peer credentials still
    # tell the agent who calls: refused, with a clear message on the caller's side.
    for folder in (agent_home["dir"], agent_home["state"], sock.parent):
        os.chmod(folder, 0o755)
    os.chmod(sock, 0o666)
    try:
        status, said = _as_nobody(lambda: client.query(sock, "status"))
    finally:
        os.chmod(sock, 0o600)
        os.chmod(sock.parent, 0o700)
    assert status != 0, said
    assert "refused this client: this cronium agent belongs to another user" in said, said


def test_no_agent_is_the_one_shot_path(acli, agent_home):
    acli("agent", "stop", "--all")
    path = script(agent_home, "hi.py", 'print("hi")\n')
    out = acli("run", "--no-agent", path)
    assert out.returncode == 0 and out.stdout == b"hi\n", out.stderr.decode()
    assert acli("agent", "status").returncode == 1  # none was started
    off = acli("run", path, env={"CRONIUM_AGENT_ENABLED": "false"})
    assert off.returncode == 0 and off.stdout == b"hi\n"
    assert acli("agent", "status").returncode == 1
    assert list((agent_home["state"] / "agent").glob("*.sock")) == []


def test_the_agent_exits_when_idle(acli, agent_home):
    acli("agent", "stop", "--all")
    idle = {"CRONIUM_AGENT_IDLE_TIMEOUT": "3"}
    assert acli("agent", "start", env=idle).returncode == 0
    status = json.loads(acli("agent", "status", "--json").stdout)
    assert status["idle_timeout"] == 3.0
    wait_for(lambda: acli("agent", "status").returncode == 1, 60, "the idle agent to exit")
    assert list((agent_home["state"] / "agent").glob("*.sock")) == []  # it removed its socket


# --- the client returns at the result; the agent owns the cleanup after it ---------------------

#: A plugins-dir plugin that holds a job's cleanup (before its containers and network go) until
#: the file `release` exists; `held-<execution>` next to it says the cleanup has begun.
HOLD_PLUGIN = """
import time
from pathlib import Path

from cronium.core import hookimpl


@hookimpl(wrapper=True)
def start_job(execution, network, launch, runtime, resources):
    handle = yield
    release = Path(runtime.config.plugin_settings("hold_cleanup")["release"])

    def hold():
        (release.parent / f"held-{execution.execution_id}").write_text("")
        deadline = time.monotonic() + 90
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    resources.add("held", execution.execution_id, hold)  # removed first: all else is still there
    return handle
"""


@pytest.fixture
def held(agent_home, acli):
    """An agent of its own configuration (the base one + the hold plugin): its jobs' cleanups wait
    for `release()`. Runs return at the result (agent.wait_cleanup = false)."""
    home = Path(tempfile.mkdtemp(prefix="hold-", dir=agent_home["dir"]))
    (home / "plugins").mkdir()
    (home / "plugins" / "hold_cleanup.py").write_text(HOLD_PLUGIN)
    config = home / "cronium.toml"
    config.write_text(f'plugins_dir = "{home / "plugins"}"\n' + (agent_home["dir"] / "cronium.toml").read_text()
                      + f'[plugin.hold_cleanup]\nrelease = "{home / "release"}"\n')
    env = {"CRONIUM_CONFIG": str(config), "CRONIUM_AGENT_WAIT_CLEANUP": "false"}
    path = script(agent_home, "hi.py", 'print("hi")\n')

    class Held:
        dir = home

        def run(self, *args, **kwargs):
            return acli(*args, env={**env, **kwargs.pop("env", {})}, **kwargs)

        def popen(self, *args):
            return subprocess.Popen([cronium_executable(), *args], env={**agent_home["env"], **env},
                                    cwd=agent_home["dir"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def hi(self, *args):
            out = self.run("run", *args, path)
            assert out.returncode == 0 and out.stdout == b"hi\n", out.stderr.decode()
            return next(line.split()[1] for line in out.stderr.decode().splitlines() if line.startswith("execution:"))

        def wait_held(self, execution):
            wait_for(lambda: (home / f"held-{execution}").exists(), 60, f"the cleanup of {execution} to begin")

        def release(self):
            (home / "release").write_text("")

        def status(self):
            out = self.run("agent", "status", "--json")
            return json.loads(out.stdout) if out.returncode == 0 else {}

    held = Held()
    yield held
    held.release()
    held.run("agent", "stop")


def _left(engine, execution) -> list[str]:
    label = {"label": f"cronium.execution={execution}"}
    return ([c["Id"][:12] for c in engine.api.containers(all=True, filters=label)]
            + [n["Name"] for n in engine.api.networks(filters=label)])


def test_run_returns_at_the_result_and_the_agent_finishes_the_cleanup(held, engine):
    execution = held.hi()
    # The client has exited while the cleanup is held: it did not wait for it.
    held.wait_held(execution)
    assert _left(engine, execution), "the client should have returned before the cleanup"
    status = held.status()
    assert (status["jobs"], status["cleaning"]) == (1, 1), status
    held.release()
    wait_for(lambda: held.status().get("jobs") == 0, 60, "the agent to finish the cleanup")
    assert _left(engine, execution) == []  # nothing left once the agent reports idle
    # --wait-cleanup: the client returns only once the cleanup is done.
    (held.dir / "release").unlink()
    waiting = held.popen("run", "--wait-cleanup", str(held.dir.parent / "hi.py"))
    wait_for(lambda: len(list(held.dir.glob("held-*"))) == 2, 60, "the second cleanup to begin")
    assert waiting.poll() is None, "--wait-cleanup returned before the cleanup"
    held.release()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and out == b"hi\n", err.decode()
    second = next(line.split()[1] for line in err.decode().splitlines() if line.startswith("execution:"))
    assert _left(engine, second) == []


def test_agent_stop_during_a_cleanup_finishes_it(held, engine):
    execution = held.hi()
    held.wait_held(execution)
    status = held.status()
    pid, sock = status["pid"], Path(status["socket"])
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not sock.exists(), 60, "the agent to stop serving")  # it is in its shutdown
    time.sleep(2)  # not a timing check: an agent that left its cleanups behind has exited by now
    assert _proc_state(pid) not in ("Z", "X"), "the stopping agent exited during a cleanup it owned"
    held.release()  # the held cleanup goes on: the agent removes the rest, then exits
    wait_for(lambda: _proc_state(pid) in ("Z", "X"), 90, "the agent to exit")
    assert _left(engine, execution) == []  # no gc: the stopping agent finished the cleanup


def _proc_state(pid: int) -> str:
    """The kernel's state letter of `pid`; "X" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def test_agent_killed_during_a_cleanup_is_reaped(held, acli, engine):
    execution = held.hi()
    held.wait_held(execution)
    assert _left(engine, execution)
    os.kill(held.status()["pid"], signal.SIGKILL)
    gc = acli("gc")
    assert gc.returncode == 0, gc.stderr.decode()
    assert _left(engine, execution) == []
    # The job had ended: its record keeps its result (the reaper marks only live ones lost).
    assert json.loads(acli("inspect", execution, "--json").stdout)["status"] == "succeeded"
