"""Swarm executor lifecycle: one trivial Python job (`print('hi')`) through the swarm executor, the
Docker executor and a bare `docker run`-equivalent (Docker SDK: create, start, wait for the logs,
remove), as interleaved triples on a single-node swarm of this engine.

The swarm is made here only if the engine is in none, and left afterwards (then the managed
Redis is reconnected to its network, which repairs its name after `docker swarm leave` on Docker
20.10). Because the swarm changes the engine for everyone, run it under the integration lock:

    flock /tmp/cronium-integration.lock .venv/bin/python -m benchmarks.swarm_lifecycle [--rounds N]

Prints the median (p10–p90) wall time of each side and the per-round ratios to the bare run. A
benchmark, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .common.baseline import PYTHON_IMAGE
from .common.stats import median, paired_ratios, summarize
from .common.table import fmt_spread

SCRIPT = "print('hi')\n"


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


def cronium_run(orchestrator) -> tuple[float, dict]:
    from cronium.core.model import JobSpec

    t0 = time.perf_counter()
    result = orchestrator.run(JobSpec(job_type="python", script=SCRIPT.encode(), script_name="hi.py",
                                      job_id="bench-swarm"))
    if result.status != "succeeded":
        raise RuntimeError(f"{result.status}: {result.error}")
    return time.perf_counter() - t0, dict(result.timings)


def main() -> None:
    from cronium.core.config import load_config
    from cronium.core.lifecycle import Orchestrator
    from cronium.core.runtime import Runtime

    parser = argparse.ArgumentParser(prog="python -m benchmarks.swarm_lifecycle")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cronium-bench-swarm-"))
    runtimes = {name: Runtime(load_config(flags={"logs.dir": str(tmp / "logs"), "executor": name},
                                          use_user_config=False, environ={}, cwd=tmp)) for name in ("swarm", "docker")}
    client = runtimes["docker"].docker
    made = client.info()["Swarm"]["LocalNodeState"] == "inactive"
    if made:
        client.api.init_swarm(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        samples = _measure(client, {name: Orchestrator(rt) for name, rt in runtimes.items()}, args.rounds)
    finally:
        for rt in runtimes.values():
            rt.close()
        if made:
            client.api.leave_swarm(force=True)
            _reconnect(client, runtimes["docker"].config)
    _report(samples)


def _measure(client, orchestrators, rounds: int) -> dict[str, list]:
    samples: dict[str, list] = {"swarm": [], "docker": [], "bare": [], "swarm phases": []}
    for name, orch in orchestrators.items():
        cronium_run(orch)  # warm-up (and the swarm's services network)
    for i in range(rounds):
        order = ["swarm", "docker", "bare"] if i % 2 == 0 else ["bare", "docker", "swarm"]
        for side in order:
            if side == "bare":
                samples["bare"].append(bare_run(client))
            else:
                wall, phases = cronium_run(orchestrators[side])
                samples[side].append(wall)
                if side == "swarm":
                    samples["swarm phases"].append(phases)
    return samples


def _reconnect(client, config) -> None:
    name, network = config["services.redis_container"], config["services.network"]
    aliases = [a for a in client.api.inspect_container(name)["NetworkSettings"]["Networks"][network].get("Aliases") or []
               if len(a) != 12]
    client.api.disconnect_container_from_network(name, network)
    client.api.connect_container_to_network(name, network, aliases=aliases or None)


def _report(samples: dict[str, list]) -> None:
    print(f"{'side':<22} {'wall s, median (p10-p90)':<28} ratio to bare (median of rounds)")
    for side in ("swarm", "docker", "bare"):
        ratio = median(paired_ratios(samples[side], samples["bare"])) if side != "bare" else 1.0
        print(f"{side + ' executor' if side != 'bare' else 'bare docker run':<22} "
              f"{fmt_spread(summarize(samples[side])):<28} {ratio:.2f}")
    phases = samples["swarm phases"]
    print("swarm phases (median s): " + ", ".join(
        f"{k} {median([p.get(k, 0.0) for p in phases]):.2f}" for k in phases[0]))


if __name__ == "__main__":
    main()
