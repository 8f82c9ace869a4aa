"""The cronium side of a benchmark: configs and runtimes like the test fixture's, an in-process
orchestrator with a log sink that notes when output arrived, and job specs."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from cronium.core import (
    hookimpl,  # light: docker/redis are imported only when a job runs
)

from .context import Context
from .stats import now


def make_config(ctx: Context, overrides: dict[str, Any] | None = None):
    """A cronium Config like the test fixture's: the managed Redis (the default), logs under the
    benchmark's temp dir, no user config, no CRONIUM_* environment; `overrides` win."""
    from cronium.core.config import load_config

    flags = {"logs.dir": str(ctx.tmp / "logs"), **(overrides or {})}
    return load_config(flags=flags, use_user_config=False, environ={}, cwd=ctx.tmp)


class CaptureSink:
    """A log sink that records when output first arrived and (optionally) keeps the text."""

    name = "bench-capture"

    def __init__(self, keep: bool):
        self.keep = keep
        self.first_at: float | None = None  # perf_counter of the first write
        self.first_wall: float | None = None
        self.lines = 0
        self.chunks: list[bytes] = []

    def write(self, batches) -> None:
        if self.first_at is None:
            self.first_at = now()
            self.first_wall = time.time()
        for b in batches:
            self.lines += b.count
            if self.keep:
                self.chunks.append(b.raw())

    def close(self, ok: bool) -> None:
        pass

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


class CapturePlugin:
    """Registered on a benchmark's Runtime: gives every execution a `CaptureSink`."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.sinks: dict[str, CaptureSink] = {}
        self._lock = threading.Lock()

    @hookimpl
    def log_sinks(self, execution, runtime):
        sink = CaptureSink(self.keep)
        with self._lock:
            self.sinks[execution.execution_id] = sink
        return sink

    def pop(self, execution_id: str) -> CaptureSink | None:
        with self._lock:
            return self.sinks.pop(execution_id, None)


def make_orchestrator(ctx: Context, overrides: dict[str, Any] | None = None, *, keep_output: bool = False):
    """(runtime, orchestrator, capture plugin) on a benchmark config. Close with `close_orchestrator`."""
    from cronium.core.lifecycle import Orchestrator
    from cronium.core.runtime import Runtime

    # A long-lived in-process orchestrator, like a worker: it keeps a warm pool when configured.
    rt = Runtime(make_config(ctx, overrides), warm_pool=True)
    capture = CapturePlugin(keep_output)
    rt.pm.register(capture, name="bench-capture")
    ctx.owners.add(rt.owner)
    return rt, Orchestrator(rt), capture


#: Config keys worth recording with every result (the code under test changes between runs).
CONFIG_KEYS = ("sidecar.pool_size", "pool.max_idle", "pool.demand_window", "pool.idle_timeout", "sidecar.max_booting", "sidecar.ready_timeout", "sidecar.memory", "sidecar.cpus",
               "redis.sidecar_auth", "logs.docker_driver", "logs.file", "logs.redis", "network.subnet_prefix",
               "limits.stop_grace", "gc.on_start")


def config_snapshot(ctx: Context) -> dict[str, Any]:
    cfg = make_config(ctx)
    out = {}
    for key in CONFIG_KEYS:
        try:
            out[key] = cfg[key]
        except Exception:
            out[key] = None  # not (or no longer) a config key
    return out


def pool_mode(ctx: Context) -> str:
    size = config_snapshot(ctx).get("sidecar.pool_size")
    return f"warm pool of {size}" if size else "no warm pool"


def close_orchestrator(rt, orch) -> None:
    try:
        orch.close()
    finally:
        rt.close()


def python_spec(script: str, *, name: str = "job.py", **fields):
    from cronium.core.model import JobSpec

    return JobSpec(job_type="python", script=script.encode(), script_name=name,
                   job_id=f"bench-{Path(name).stem}"[:60], **fields)
