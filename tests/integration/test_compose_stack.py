"""compose.yaml end to end: `cronium serve` + its Redis brought up by docker-compose (v1) under a
test-unique project, image tag, services network, metrics port and secrets folder; healthy,
`cronium doctor` inside, one job deployed and submitted through it; then `down -v` and the test tag
removed, with nothing of the stack left on the engine. The serve image is built offline on
cronium/python from the site scripts/serve-site.sh makes (no registry, a local package index)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import docker
import pytest
from ports import free_port
from queue_util import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = b'''[deployment]
name = "compose-it"

[jobs.compose-hello]
type = "python"
inline = """
import cronium
cronium.output({"via": "compose"})
print("hello from the compose stack")
"""
timeout = 60
'''


class Stack:
    def __init__(self, tmp_path: Path):
        uid = secrets.token_hex(4)
        self.project = f"cronium-it-{uid}"
        self.image = f"cronium/serve:it-{uid}"
        self.network = f"cronium-it-{uid}-services"
        self.port = free_port()
        password = secrets.token_hex(16)
        (tmp_path / "redis.conf").write_text(f"requirepass {password}\n")
        (tmp_path / "cronium.toml").write_text(
            f'[redis]\nurl = "redis://:{password}@redis:6379/0"\nsidecar_url = "redis://redis:6379/0"\n')
        for name in ("redis.conf", "cronium.toml"):
            (tmp_path / name).chmod(0o644)  # read by uid 999 (redis) in its container
        self.env = {**os.environ, "CRONIUM_SERVE_IMAGE": self.image, "CRONIUM_SERVICES_NETWORK": self.network,
                    "CRONIUM_METRICS_PORT": str(self.port), "CRONIUM_SECRETS_DIR": str(tmp_path)}

    def compose(self, *args: str, stdin: bytes | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["docker-compose", "-p", self.project, "-f", str(ROOT / "compose.yaml"), *args],
                              input=stdin, capture_output=True, env=self.env, cwd=ROOT, timeout=timeout)

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
            return response.status, response.read().decode()

    def wait_healthy(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = self.compose("logs", "--no-color", "--tail", "40").stdout.decode(errors="replace")
                pytest.fail(f"cronium serve did not answer /healthz within {seconds} s:\n{logs}")
            time.sleep(0.5)

    def left_on_engine(self, client) -> list[str]:
        label = f"com.docker.compose.project={self.project}"
        found = [f"container {c['Names'][0]}" for c in client.api.containers(all=True, filters={"label": label})]
        found += [f"network {n['Name']}" for n in client.api.networks(filters={"label": label})]
        found += [f"network {n['Name']}" for n in client.api.networks(names=[self.network]) if n["Name"] == self.network]
        found += [f"volume {v['Name']}" for v in (client.api.volumes(filters={"label": label}).get("Volumes") or [])]
        found += [f"image {self.image}" for _ in client.api.images(name=self.image)]
        return found


@pytest.fixture
def stack(tmp_path):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (v1) is not installed")
    made = subprocess.run([str(ROOT / "scripts" / "serve-site.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    stack = Stack(tmp_path)
    client = docker.from_env()
    try:
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "-t", "30")
        subprocess.run(["docker", "image", "rm", stack.image], capture_output=True)
        left = stack.left_on_engine(client)
        client.close()
    assert left == [], f"the compose stack left {left}"


def test_compose_stack_serves_metrics_passes_doctor_and_runs_a_job(stack):
    built = stack.compose("up", "-d", "--build", timeout=600)
    assert built.returncode == 0, built.stderr.decode(errors="replace")[-3000:]
    stack.wait_healthy()
    status, metrics = stack.get("/metrics")
    assert status == 200 and "cronium_worker_concurrency" in metrics

    doctor = stack.compose("exec", "-T", "cronium", "cronium", "doctor")
    report = doctor.stdout.decode(errors="replace") + doctor.stderr.decode(errors="replace")
    # Engine, config, plugins and Redis must be fine. An `image` line may fail where the shared
    # :latest images were built by another checkout (their inputs differ from this one's).
    failed = [line for line in report.splitlines() if line.startswith("FAIL") and not line[5:].startswith("image ")]
    assert failed == [] and doctor.returncode in (0, 1), report
    assert "ok   docker engine" in report and "ok   redis            external" in report, report

    run = stack.compose("exec", "-T", "cronium", "sh", "-c",
                        "cat > /tmp/compose-it.toml && cronium deploy /tmp/compose-it.toml >/dev/null "
                        "&& cronium submit compose-hello --wait --timeout 90 --json",
                        stdin=DEPLOYMENT, timeout=150)
    assert run.returncode == 0, (run.stdout + run.stderr).decode(errors="replace")
    record = json.loads(run.stdout)
    assert record["status"] == "succeeded" and record["output"] == {"via": "compose"}
    client = docker.from_env()
    try:  # the job's container, sidecar and network go (cleanup ran inside the stack; `--wait`
        # returns at the final record, which is written before the worker's cleanup)
        label = {"label": f"cronium.execution={record['id']}"}
        wait_for(lambda: client.api.containers(all=True, filters=label) == [] and client.api.networks(filters=label) == [],
                 30, "the job's containers and network to be removed")
    finally:
        client.close()
