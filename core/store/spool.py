"""Final record fields kept on local disk while Redis is down."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from . import Store


class RecordSpool:
    """Final execution records that could not be written because Redis was down, kept as local
    files (0600) and written when Redis answers again — by the same process before it exits, or
    by the next cronium process that starts on this host."""

    def __init__(self, directory):
        from pathlib import Path

        self.dir = Path(directory)

    def put(self, execution_id: str, fields: Mapping[str, Any]) -> None:
        import os

        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{execution_id}.json"
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing.update(fields)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(existing, fh)
        tmp.replace(path)

    def pending(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("exec_*.json")) if self.dir.is_dir() else []

    def flush(self, store: "Store") -> list[str]:
        """Write every spooled record; returns the ids written. Raises StoreUnavailable if Redis
        is still down (nothing is lost: the files stay)."""
        written = []
        for execution_id in self.pending():
            path = self.dir / f"{execution_id}.json"
            fields = json.loads(path.read_text())
            store.records.update(execution_id, fields)
            path.unlink()
            written.append(execution_id)
        return written
