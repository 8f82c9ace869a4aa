"""`python -m cronium.sidecar` end to end, as a subprocess on a free loopback port."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from ports import free_port

READY_TIMEOUT_SECONDS = 60


def sidecar_command(*args: str) -> list[str]:
    # -W default: any warning raised while starting (deprecations included) reaches stderr.
    return [sys.executable, "-W", "default", "-m", "cronium.sidecar", *args]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def start_sidecar(settings: dict, *args: str, stdin_text: bytes | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        sidecar_command(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    proc.stdin.write(json.dumps(settings).encode() if stdin_text is None else stdin_text)
    proc.stdin.close()
    proc.stdin = None  # so that communicate() does not flush it
    return proc


def read_ready_line(proc: subprocess.Popen) -> bytes:
    readable, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_SECONDS)
    if not readable:
        proc.kill()
        pytest.fail(f"no ready line; stderr: {proc.stderr.read().decode(errors='replace')}")
    return proc.stdout.readline()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def process_settings(settings_document) -> dict:
    """Settings for a real process: a free loopback port and a Redis URL on a closed port."""
    return {**settings_document, "host": "127.0.0.1", "port": free_port(),
            "redis_url": f"redis://sidecar:s3cret-password@127.0.0.1:{free_port()}/0"}


def stop(proc: subprocess.Popen) -> tuple[int, bytes, bytes]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the sidecar did not stop on SIGTERM; stderr: {err.decode(errors='replace')}")
    return proc.returncode, out, err


def test_settings_on_stdin_ready_line_health_and_clean_sigterm_exit(process_settings):
    port = process_settings["port"]
    proc = start_sidecar(process_settings)
    try:
        ready = read_ready_line(proc)
        assert ready == f'{{"event": "ready", "host": "127.0.0.1", "port": {port}, "store": "unavailable"}}\n'.encode()
        status, body = get(f"http://127.0.0.1:{port}/health")
        assert (status, body) == (503, {"status": "degraded", "store": "unavailable"})
    finally:
        returncode, rest_of_stdout, stderr = stop(proc)
    assert returncode == 0
    assert rest_of_stdout == b"", "stdout must hold exactly the one ready line"
    log = stderr.decode()
    assert "Warning" not in log and "DEPRECATION" not in log, log
    assert "s3cret-password" not in log
    assert "Sanic" not in log, "no banner / MOTD"


def test_settings_file_option(process_settings, tmp_path):
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(process_settings))
    proc = start_sidecar({}, "--settings", str(settings_file), stdin_text=b"")
    try:
        assert json.loads(read_ready_line(proc)) == {"event": "ready", "host": "127.0.0.1",
                                                     "port": process_settings["port"], "store": "unavailable"}
    finally:
        returncode, _, _ = stop(proc)
    assert returncode == 0


@pytest.mark.parametrize(
    ("stdin_text", "expected"),
    [
        (b"", "the settings document is empty"),
        (b"{broken", "not a valid JSON document"),
        (json.dumps({"execution_id": "exec_0123456789abcdef"}).encode(), "settings.job_id: is required"),
    ],
)
def test_bad_settings_exit_2_with_a_clear_message(stdin_text, expected):
    result = subprocess.run(sidecar_command(), input=stdin_text, capture_output=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 2
    assert result.stdout == b""
    assert expected in result.stderr.decode()


def test_bad_settings_never_echo_secrets(settings_document):
    secret = "hs256-secret-too-short"
    document = {**settings_document, "auth": {"algorithm": "HS256", "key": secret},
                "redis_url": "redis://user:another-s3cret@127.0.0.1:6379/0"}
    result = subprocess.run(sidecar_command(), input=json.dumps(document).encode(), capture_output=True,
                            env=subprocess_env(), timeout=60)
    assert result.returncode == 2
    assert "settings.auth.key" in result.stderr.decode()
    assert secret not in result.stderr.decode()
    assert "another-s3cret" not in result.stderr.decode()


def test_listen_subnet_binds_the_own_address_in_it_only(process_settings):
    """127.0.0.0/8 stands for the job network: the sidecar listens on 127.0.0.1 and nowhere else."""
    document = {k: v for k, v in process_settings.items() if k != "host"}
    proc = start_sidecar({**document, "listen_subnet": "127.0.0.0/8"})
    try:
        assert json.loads(read_ready_line(proc))["host"] == "127.0.0.1"
        listening = _listening_addresses(process_settings["port"])
        assert listening == {"127.0.0.1"}, listening
    finally:
        stop(proc)


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port`, as the kernel holds them (/proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as table:
        for row in list(table)[1:]:
            local, state = row.split()[1], row.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_listen_subnet_without_an_own_address_exits_2(process_settings):
    document = {k: v for k, v in process_settings.items() if k != "host"}
    result = subprocess.run(sidecar_command(), input=json.dumps({**document, "listen_subnet": "198.51.100.0/28"}).encode(),
                            capture_output=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 2 and result.stdout == b""
    assert "settings.listen_subnet: this container has no address in 198.51.100.0/28" in result.stderr.decode()


def test_missing_settings_file_exits_2(tmp_path):
    result = subprocess.run(sidecar_command("--settings", str(tmp_path / "absent.json")), capture_output=True,
                            env=subprocess_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "cannot read the settings file" in result.stderr.decode()


def test_the_sidecar_imports_nothing_from_the_orchestrator_nor_redis_py_nor_pyjwt():
    """Neither redis-py nor PyJWT is in the sidecar image (its own `resp` and `tokens` are: 9 MB less RSS)."""
    probe = (
        "import sys, cronium.sidecar.__main__, cronium.sidecar.app, cronium.sidecar.store, cronium.sidecar.tools\n"
        "print('\\n'.join(m for m in sys.modules\n"
        "                 if m in ('docker', 'redis', 'jwt') or m.startswith(('docker.', 'redis.', 'jwt.', 'cronium.core', 'cronium.plugins'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == ""


def test_the_sidecar_process_leaves_websockets_and_html_pages_out_and_still_answers_json(process_settings):
    """`python -m cronium.sidecar` runs without the real websockets (its C speedups are never mapped) and
    still answers what would reach those features — a websocket upgrade, an HTML client hitting an error
    Sanic raises itself — with its JSON errors, and keeps serving."""
    port = process_settings["port"]
    proc = start_sidecar(process_settings)
    try:
        read_ready_line(proc)
        with open(f"/proc/{proc.pid}/maps") as maps:
            mapped = maps.read()
        assert "websockets/speedups" not in mapped, "the real websockets package was loaded"
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Accept": "text/html"}
        for path, method, expected in (("/ws", "GET", 404), ("/health", "DELETE", 405), ("/", "GET", 404)):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=upgrade)
            try:
                urllib.request.urlopen(request, timeout=10)
                pytest.fail(f"{method} {path} succeeded")
            except urllib.error.HTTPError as error:
                assert error.code == expected
                assert error.headers["Content-Type"].startswith("application/json")
                assert json.loads(error.read())["success"] is False
        assert get(f"http://127.0.0.1:{port}/health")[0] == 503  # still serving (store unavailable)
    finally:
        returncode, _, stderr = stop(proc)
    assert returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()


def test_lean_stand_ins_refuse_real_use_and_never_replace_loaded_packages():
    probe = (
        "import sys\n"
        "from cronium.sidecar import lean\n"
        "assert lean.install() is True\n"
        "import sanic, websockets.frames, tracerite.html\n"
        "assert tracerite.html.style == '' and websockets.frames.Opcode.TEXT is websockets.frames.Opcode\n"
        "try:\n"
        "    websockets.frames.Frame(1, b'x')\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n"
        "assert lean.install() is False\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert "refused: websockets.frames.Frame is not available in the cronium sidecar" in result.stdout.decode()
    loaded_first = "import sys, sanic\nfrom cronium.sidecar import lean\nprint(lean.install(), type(sys.modules['websockets']).__name__)"
    real = subprocess.run([sys.executable, "-c", loaded_first], capture_output=True, env=subprocess_env(), timeout=60)
    assert real.stdout.decode().split() == ["False", "module"], real.stderr.decode()
