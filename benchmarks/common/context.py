"""What one `python -m benchmarks` invocation shares between benchmarks: its run id, temp dir,
Docker client, and the owners, executions and namespaces it started (for the clean-up)."""
from __future__ import annotations

import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_LABEL = "cronium.bench"


@dataclass
class Context:
    """What one `python -m benchmarks` invocation shares between benchmarks."""

    quick: bool
    pairs: int | None = None  # --pairs: override every benchmark's number of pairs
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    owners: set[str] = field(default_factory=set)
    exec_ids: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    machine: dict[str, Any] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory | None = None
    _client: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"cronium-bench-{self.run_id}-")
        return Path(self._tmp.name)

    @property
    def docker(self):
        """A Docker SDK client for the baselines (its own connection pool, not cronium's)."""
        if self._client is None:
            import docker

            self._client = docker.from_env(timeout=120, max_pool_size=64)
        return self._client

    @property
    def labels(self) -> dict[str, str]:
        return {BENCH_LABEL: self.run_id}

    def n_pairs(self, quick: int, full: int) -> int:
        return self.pairs or (quick if self.quick else full)

    def note_exec(self, execution_id: str | None) -> None:
        if execution_id:
            with self._lock:
                self.exec_ids.add(execution_id)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._client is not None:
            self._client.close()
            self._client = None
