"""What else uses the engine while a benchmark runs: cronium containers of other owners and other
cronium/pytest processes (their presence means the numbers are disturbed)."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from .cleanup import leftovers, ours
from .context import Context


def _foreign_processes(ctx: Context) -> list[str]:
    """Other cronium / pytest processes on this machine (not this benchmark's own `cronium run`s)."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if not cmd or f"cronium-bench-{ctx.run_id}" in cmd or "-m benchmarks" in cmd:
            continue
        if cmd.startswith(("flock ", "timeout ")):
            continue  # waiting for the integration lock (or a wrapper): its child is what runs, if anything
        if "pytest" in cmd or "bin/cronium " in cmd or cmd.endswith("bin/cronium"):
            found.append(f"{entry}: {cmd[:120]}")
    return found


class ActivityMonitor:
    """Samples, every `interval` seconds while a benchmark runs, what else uses the engine: cronium
    containers of other owners and other cronium/pytest processes. Their presence means the
    numbers are disturbed (and a reaper of a process using another Redis may remove this run's
    containers)."""

    def __init__(self, ctx: Context, interval: float = 3.0):
        self.ctx = ctx
        self.interval = interval
        self.samples = 0
        self.max_foreign_containers = 0
        self.samples_with_foreign = 0
        self.processes: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-monitor", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                a = foreign_activity(self.ctx)
                procs = _foreign_processes(self.ctx)
            except Exception:
                continue
            self.samples += 1
            n = a["foreign_cronium_containers"]
            self.max_foreign_containers = max(self.max_foreign_containers, n)
            if n or procs:
                self.samples_with_foreign += 1
            self.processes.update(p.split(": ", 1)[1] for p in procs)

    def __enter__(self) -> "ActivityMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def disturbed(self) -> bool:
        return self.samples_with_foreign > 0

    def report(self) -> dict[str, Any]:
        return {"samples": self.samples, "samples_with_foreign_activity": self.samples_with_foreign,
                "max_foreign_cronium_containers": self.max_foreign_containers,
                "foreign_processes": sorted(self.processes)[:20], "disturbed": self.disturbed}


def foreign_activity(ctx: Context) -> dict[str, Any]:
    """What else is using the engine and the CPU right now (these machines are shared and noisy):
    cronium containers of other owners (e.g. a test suite) and the load average."""
    try:
        items = leftovers(ctx.docker)
    except Exception:
        items = []
    mine = {i["id"] for i in ours(ctx, items)}
    foreign = [i for i in items if i["kind"] == "container" and i["id"] not in mine
               and i.get("state") not in ("removing", "dead", "exited")]
    try:
        running = len(ctx.docker.api.containers())
    except Exception:
        running = None
    return {"foreign_cronium_containers": len(foreign), "containers_running": running,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}
