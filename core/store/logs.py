"""Log streams: one `P logs:<execution>` Redis Stream per execution, ended by an `eof` entry."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    from . import Store


class LogStreams:
    def __init__(self, store: "Store"):
        self.store, self.keys, self.redis = store, store.keys, store.redis

    def append(self, execution_id: str, entries: Iterable[Mapping[str, object]], *, max_entries: int,
               ttl: int) -> None:
        """Add entries (field maps) in order, trimming the stream to about `max_entries`, and (re)set
        its expiry to `ttl` seconds: from the first write on, so a stream whose writer crashed
        before `end` still expires."""
        key = self.keys.logs(execution_id)
        with self.store.guard(key=key):
            pipe = self.redis.pipeline(transaction=False)
            for fields in entries:
                pipe.xadd(key, dict(fields), maxlen=max_entries, approximate=True)
            pipe.expire(key, ttl)
            pipe.execute()

    def end(self, execution_id: str, *, max_entries: int, ttl: int) -> None:
        """The `eof` entry, and the stream's expiry."""
        key = self.keys.logs(execution_id)
        with self.store.guard(key=key):
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(key, {"eof": 1}, maxlen=max_entries, approximate=True)
            pipe.expire(key, ttl)
            pipe.execute()

    def exists(self, execution_id: str) -> bool:
        with self.store.guard():
            return bool(self.redis.exists(self.keys.logs(execution_id)))

    def read(self, execution_id: str, after: str = "0-0", *, count: int = 1000,
             block_ms: int | None = None) -> list[tuple[str, dict[bytes, bytes]]]:
        """Entries after the entry id `after` (waiting up to `block_ms` for some): (entry id, fields)."""
        key = self.keys.logs(execution_id)
        with self.store.guard():
            reply = self.redis.xread({key: after}, count=count, block=block_ms)
        entries = reply[0][1] if reply else []
        return [(eid.decode() if isinstance(eid, bytes) else eid, fields) for eid, fields in entries]

    def span(self, execution_id: str, *, start: str = "-", end: str = "+", count: int = 1000,
             newest_first: bool = False) -> list[tuple[str, dict[bytes, bytes]]]:
        """Up to `count` entries with ids between `start` and `end` (XRANGE ids: `-`, `+`, `<ms>`,
        `(<id>` exclusive), oldest first or `newest_first`: (entry id, fields)."""
        key = self.keys.logs(execution_id)
        with self.store.guard():
            if newest_first:
                entries = self.redis.xrevrange(key, max=end, min=start, count=count)
            else:
                entries = self.redis.xrange(key, min=start, max=end, count=count)
        return [(eid.decode() if isinstance(eid, bytes) else eid, fields) for eid, fields in entries]

    def delete(self, execution_id: str) -> None:
        with self.store.guard():
            self.redis.delete(self.keys.logs(execution_id))
