"""Swarm executor: jobs/s across two nodes vs one, and one job's lifecycle (swarm executor vs
Docker executor vs a bare `docker run`-equivalent), on the two-node test rig.

The rig (`cronium.core.testing.swarm_rig`: this engine as manager, a second dockerd in a network
namespace as worker, a TLS registry) is started here and torn down afterwards, leaving the engine
as found; the python and sidecar images are pushed to its registry. The sidecars use a Redis of
this benchmark (a container of the cronium redis image with a published loopback port, on the
services overlay), never the managed Redis. The rig needs root; without it the benchmark reports
a skipped row. Because the swarm changes the engine for everyone, run it under the lock:

    flock /tmp/cronium-integration.lock .venv/bin/python -m benchmarks swarm_lifecycle [--quick]

Rows: jobs/s for the same N trivial jobs at the same concurrency, placement spread over both
nodes (no constraint: the swarm spreads the sidecars, each job runs beside its sidecar) vs pinned
to the manager (`node.role==manager`); then one job at a time on the manager: swarm executor,
Docker executor and bare create/start/wait/remove, interleaved. Nothing here asserts a time.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

from .common.baseline import PYTHON_IMAGE
from .common.commands import run_threads
from .common.context import Context
from .common.orchestrator import close_orchestrator, make_orchestrator, python_spec
from .common.stats import median, paired_ratio, summarize
from .common.table import Row, fmt_spread

NAME = "swarm"
SCRIPT = "print('hi')\n"
CONCURRENCY = 4
ON_MANAGER = "node.role==manager"


def bare_run(client) -> float:
    t0 = time.perf_counter()
    api = client.api
    cid = api.create_container(PYTHON_IMAGE, ["python3", "-c", SCRIPT], labels={"cronium.bench": "swarm"})["Id"]
    try:
        api.start(cid)
        api.wait(cid)
        assert b"hi" in api.logs(cid)
    finally:
        api.remove_container(cid, force=True)
    return time.perf_counter() - t0


def _one(orch, placement: tuple[str, ...] = ()) -> tuple[float, dict]:
    t0 = time.perf_counter()
    result = orch.run(python_spec(SCRIPT, name="hi.py", placement=placement))
    if result.status != "succeeded":
        raise RuntimeError(f"{result.status}: {result.error}")
    return time.perf_counter() - t0, dict(result.timings)


def _batch(orch, n: int, placement: tuple[str, ...]) -> dict[str, Any]:
    t0 = time.perf_counter()
    results = run_threads(lambda i: _one(orch, placement)[0], n, CONCURRENCY)
    wall = time.perf_counter() - t0
    ok = [r for r in results if isinstance(r, float)]
    errors = [repr(r)[:300] for r in results if not isinstance(r, float)]
    return {"wall": wall, "ok": len(ok), "errors": errors, "jobs_per_s": len(ok) / wall}


def _start_redis(client, image: str) -> tuple[str, int]:
    """A Redis of this benchmark on a bridge network of its own (the Docker executor's services
    network here), alias `bench-redis`: (its name, which is also the network's, and its loopback port)."""
    name = f"cronium-bench-swarm-redis-{secrets.token_hex(3)}"
    client.api.create_network(name, driver="bridge", labels={"cronium.bench": "swarm"})
    client.api.create_container(image, ["--save", "", "--appendonly", "no", "--bind", "0.0.0.0",
                                        "--protected-mode", "no"], name=name, labels={"cronium.bench": "swarm"},
                                host_config=client.api.create_host_config(port_bindings={6379: ("127.0.0.1", None)}),
                                networking_config=client.api.create_networking_config(
                                    {name: client.api.create_endpoint_config(aliases=["bench-redis"])}))
    client.api.start(name)
    port = int(client.api.port(name, 6379)[0]["HostPort"])
    for _ in range(100):
        if client.api.exec_start(client.api.exec_create(name, ["redis-cli", "ping"])["Id"]).strip() == b"PONG":
            break
        time.sleep(0.1)
    return name, port


def run(ctx: Context) -> dict[str, Any]:
    from cronium.core.config import load_config
    from cronium.core.host.images import default_tags
    from cronium.core.testing.swarm_rig import SwarmRig, rig_unavailable

    missing = rig_unavailable()
    if missing:
        return {"rows": [Row(NAME, f"skipped: the two-node rig cannot run here ({missing})", "", None, None, None,
                             "–", None)]}
    client = ctx.docker
    redis, port = _start_redis(client, load_config(use_user_config=False, environ={})["images.redis"])
    rig = SwarmRig(client)
    try:
        rig.start()
        rig.push({k: default_tags()[k] for k in ("python", "sidecar")}, ["python", "sidecar"])
        common = {"redis.url": f"redis://127.0.0.1:{port}/0", "redis.sidecar_url": "redis://bench-redis:6379/0",
                  "sidecar.pool_size": 0, "images.registry": rig.registry.address,
                  "services.network": redis, "swarm.redis_container": redis, "swarm.services_network": f"cronium-bench-swarm-{secrets.token_hex(3)}",
                  "swarm.task_timeout": 120.0}
        return _measure(ctx, client, common)
    finally:
        try:
            rig.stop()
        finally:
            client.api.remove_container(redis, force=True)
            client.api.remove_network(redis)


def _measure(ctx: Context, client, common: dict) -> dict[str, Any]:
    n, rounds = (8, 3) if ctx.quick else (24, 6)
    sides = {name: make_orchestrator(ctx, {**common, "executor": name}) for name in ("swarm", "docker")}
    swarm, docker = sides["swarm"][1], sides["docker"][1]
    out: dict[str, Any] = {"spread": [], "pinned": [], "lifecycle": {"swarm": [], "docker": [], "bare": []}}
    try:
        _one(swarm), _one(docker), _one(swarm, (ON_MANAGER,))  # warm-up: the services network, image pulls
        for p in range(2):
            for side in (("spread", "pinned") if p % 2 == 0 else ("pinned", "spread")):
                out[side].append(_batch(swarm, n, () if side == "spread" else (ON_MANAGER,)))
                print(f"  {side}: {out[side][-1]['ok']}/{n} ok, {out[side][-1]['jobs_per_s']:.2f} jobs/s", flush=True)
        for i in range(rounds):
            for side in (("swarm", "docker", "bare") if i % 2 == 0 else ("bare", "docker", "swarm")):
                wall = bare_run(client) if side == "bare" else _one(swarm if side == "swarm" else docker,
                                                                    (ON_MANAGER,) if side == "swarm" else ())[0]
                out["lifecycle"][side].append(wall)
    finally:
        for rt, orch, _capture in sides.values():
            close_orchestrator(rt, orch)
    return {**out, "rows": _rows(out, n)}


def _rows(out: dict[str, Any], n: int) -> list[Row]:
    spread, pinned = ([x["jobs_per_s"] for x in out[k]] for k in ("spread", "pinned"))
    life = out["lifecycle"]
    rows = [Row(NAME, f"jobs/s, two nodes (spread) vs one (pinned) ({n} jobs, {CONCURRENCY} at a time)", "",
                median(pinned), median(spread), paired_ratio(spread, pinned), "–", None,
                fmt_spread(summarize(pinned)), fmt_spread(summarize(spread)))]
    for side in ("swarm", "docker"):
        rows.append(Row(NAME, f"one job, {side} executor vs bare create/start/wait/rm", "s", median(life["bare"]),
                        median(life[side]), paired_ratio(life[side], life["bare"]), "–", None,
                        fmt_spread(summarize(life["bare"])), fmt_spread(summarize(life[side]))))
    failed = sum(len(x["errors"]) for x in out["spread"] + out["pinned"])
    if failed:
        rows.append(Row(NAME, "failed swarm jobs", "", None, failed, None, "–", False))
    return rows
