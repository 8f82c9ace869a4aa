"""An execution's log for a page: the lines so far, and the rest followed as server-sent events.

Lines come from the execution's Redis log stream (`store.logs`), as `cronium logs -f` reads it.
Each is {stream, text} with the text made safe by `render.page_text` (terminal escapes visible,
colour codes dropped); the page escapes it again as HTML (Jinja) or sets it as text (script).
An `event: status` carries the record's status whenever it changes (the page's badge follows it).
A stream is bounded: it ends with `event: end` when the execution's log ends (its `eof` entry, or
the record ended and the stream is gone), and closes after STREAM_SECONDS anyway — the browser
reconnects with Last-Event-ID and goes on from there.
"""
from __future__ import annotations

import asyncio
import json
import time

from cronium.core.model import ENDED_STATUSES

from .render import page_text

#: Entries a page shows at most (the rest: `cronium logs`).
MAX_LINES = 5000
#: Seconds one event stream lasts at most; seconds between reads when nothing came.
STREAM_SECONDS = 300
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15


def _line(fields: dict) -> dict:
    stream = fields.get(b"stream", b"stdout").decode(errors="replace")
    return {"stream": "stderr" if stream == "stderr" else "stdout",
            "text": page_text(fields.get(b"data", b"").decode("utf-8", errors="backslashreplace"))}


def log_lines(store, execution_id: str) -> tuple[list[dict], str, bool]:
    """(lines, the last entry id read, whether lines were left out) of the log so far."""
    entries = store.logs.read(execution_id, "0-0", count=MAX_LINES)
    lines = [_line(f) for _, f in entries if b"eof" not in f]
    last = entries[-1][0] if entries else "0-0"
    return lines, last, len(entries) >= MAX_LINES


def _ended(store, status: str | None, execution_id: str) -> bool:
    return status in ENDED_STATUSES and not store.logs.exists(execution_id)


async def stream_log(store, execution_id: str, after: str, send) -> None:
    """Send the log entries after `after` as events (`id` = entry id) until the log ends or
    STREAM_SECONDS pass."""
    await send("retry: 1000\n\n")
    deadline = time.monotonic() + STREAM_SECONDS
    quiet_since, shown = time.monotonic(), None
    while time.monotonic() < deadline:
        entries = await asyncio.to_thread(store.logs.read, execution_id, after, count=500)
        for entry_id, fields in entries:
            after = entry_id
            if b"eof" in fields:
                await send("event: end\ndata: eof\n\n")
                return
            await send(f"id: {entry_id}\ndata: {json.dumps(_line(fields))}\n\n")
        status = await asyncio.to_thread(store.records.status, execution_id)
        if status != shown:  # the page's status badge follows the record (pending → running → ...)
            shown = status
            await send(f"event: status\ndata: {json.dumps(status)}\n\n")
        if entries:
            quiet_since = time.monotonic()
            continue
        if await asyncio.to_thread(_ended, store, status, execution_id):
            await send("event: end\ndata: ended\n\n")
            return
        if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            await send(": keep-alive\n\n")
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
