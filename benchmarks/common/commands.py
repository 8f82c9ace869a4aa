"""Running things: commands as child processes (wall time, first output line, peak RSS), the
summary `cronium run` prints, many calls on threads, and SIGTERM as Ctrl-C."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .stats import now


def cronium_cli() -> str:
    """The `cronium` executable of the interpreter running the benchmarks (the project venv)."""
    candidate = Path(sys.executable).parent / "cronium"
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which("cronium")
    if not found:
        raise SystemExit("benchmarks: no `cronium` executable next to this Python or on PATH (run `make setup`)")
    return found


@dataclass
class CliRun:
    argv: list[str]
    wall: float
    returncode: int
    first_line: float | None  # seconds from spawn to the first stdout line (when stdout was piped)
    stdout: str
    stderr: str
    maxrss_kb: int  # peak RSS of the child process (its VmHWM, polled every 20 ms until it exits)
    cpu: float = 0.0  # user + system CPU seconds of the child itself (wait4; a detached grandchild is not in it)


def run_command(argv: Sequence[str], *, stdout_path: Path | None = None, keep_stdout: bool = True,
                timeout: float = 600, env: dict[str, str] | None = None) -> CliRun:
    """Spawn `argv`, time it to exit, note when the first stdout line arrived (pipe mode) and track
    the child's peak RSS. stdout goes to `stdout_path` when given (no first-line time)."""
    out_fh = open(stdout_path, "wb") if stdout_path else None
    start = now()
    proc = subprocess.Popen(list(argv), stdout=out_fh or subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    first: list[float] = []
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []

    def read_out():
        for line in proc.stdout:
            if not first:
                first.append(now() - start)
            if keep_stdout:
                out_chunks.append(line)

    def read_err():
        for chunk in iter(lambda: proc.stderr.read(65536), b""):
            err_chunks.append(chunk)

    done = threading.Event()
    peak = [0]

    def watch_rss():
        # Peak RSS = the child's VmHWM (high-water mark of its own address space), polled until it
        # exits. wait4's ru_maxrss is useless here: Linux carries the parent's RSS at fork over
        # into the child's maxrss, so every child of a big benchmark process would look as big.
        path = f"/proc/{proc.pid}/status"
        while not done.is_set():
            try:
                with open(path, "rb") as fh:
                    for line in fh:
                        if line.startswith(b"VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
                            break
            except (OSError, ValueError):
                break
            done.wait(0.02)

    threads = [threading.Thread(target=read_err, daemon=True)]
    if out_fh is None:
        threads.append(threading.Thread(target=read_out, daemon=True))
    watcher = threading.Thread(target=watch_rss, daemon=True)
    watcher.start()
    for t in threads:
        t.start()
    timer = threading.Timer(timeout, lambda: _terminate(proc))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        wall = now() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        _terminate(proc)
        raise
    finally:
        done.set()
        timer.cancel()
        if out_fh:
            out_fh.close()
    watcher.join(5)
    for t in threads:
        t.join(30)
    return CliRun(list(argv), wall, proc.returncode, first[0] if first else None,
                  b"".join(out_chunks).decode("utf-8", "replace"), b"".join(err_chunks).decode("utf-8", "replace"),
                  peak[0], usage.ru_utime + usage.ru_stime)


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM (cronium cancels and cleans up), then SIGKILL after 30 s."""
    if proc.returncode is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        for _ in range(300):
            if proc.poll() is not None:
                return
            time.sleep(0.1)
        proc.kill()
    except (ProcessLookupError, ChildProcessError):
        pass


SUMMARY_RE = {
    "execution_id": re.compile(r"^execution: (exec_[0-9a-f]{16})", re.M),
    "status": re.compile(r"^status: (\w+)", re.M),
    "duration": re.compile(r"^duration: ([\d.]+)s", re.M),
    "phases": re.compile(r"^phases: (.*)$", re.M),
}


def stop_agents(env: dict[str, str] | None = None) -> None:
    """`cronium agent stop --all`: no agent of this user keeps running (or starts the next run warm)."""
    subprocess.run([cronium_cli(), "agent", "stop", "--all"], capture_output=True, timeout=180, env=env)


def parse_cli_summary(stderr: str) -> dict[str, Any]:
    """The summary `cronium run` prints on stderr: execution id, status, duration, phase timings."""
    out: dict[str, Any] = {}
    for key, rx in SUMMARY_RE.items():
        m = rx.search(stderr)
        if m:
            out[key] = m.group(1)
    if "duration" in out:
        out["duration"] = float(out["duration"])
    phases = {}
    for name, value in re.findall(r"(\w+) ([\d.]+)s", out.get("phases", "")):
        phases[name] = float(value)
    out["phases"] = phases
    return out


def install_sigterm_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread, so every `finally` clean-up runs."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"received signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def run_threads(target: Callable[[int], Any], count: int, concurrency: int) -> list[Any]:
    """Run target(i) for i in range(count), `concurrency` at a time; results in order (exceptions
    are returned, not raised)."""
    from concurrent.futures import ThreadPoolExecutor

    def safe(i):
        try:
            return target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            return exc

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench") as pool:
        return list(pool.map(safe, range(count)))
