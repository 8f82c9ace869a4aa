"""Cancel requests: `cronium cancel ID`, from any host, stops the execution where it runs.

`Queue.cancel` sets the cancel key `P cancel:<id>` (the reason) of an execution an owner runs and
publishes its id on the channel `P cancel`. A `CancelWatcher` in each process that runs
executions — a worker (many at once), `cronium run` (one) — turns those requests into
`Cancellation.cancel(reason)`: it listens on the channel and, every second, also reads the cancel
keys of the executions it watches, so a request published before it subscribed (or while Redis
did not answer) is not missed.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:
    from ..lifecycle import Cancellation
    from ..store import Store

log = logging.getLogger("cronium.cancel")

#: Seconds between two reads of the cancel keys (and between attempts while Redis is down).
POLL_INTERVAL = 1.0


class CancelWatcher:
    """Watches one execution (`execution_id` and its `cancellation`) or, with `running`, the
    executions a callable returns each time it is asked (execution id -> its Cancellation), in a
    daemon thread from `start()` to `stop()`."""

    def __init__(self, store: "Store", execution_id: str | None = None, cancellation: "Cancellation | None" = None,
                 *, running: Callable[[], Mapping[str, "Cancellation"]] | None = None):
        if running is None:
            if execution_id is None or cancellation is None:
                raise TypeError("CancelWatcher needs an execution id and its cancellation, or running=")
            running = lambda: {execution_id: cancellation}  # noqa: E731
        self.store = store
        self._running = running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cronium-cancel-watch", daemon=True)

    def start(self) -> "CancelWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        queue = self.store.queue
        requests = None
        while not self._stop.is_set():
            try:
                if requests is None:
                    requests = queue.cancel_requests()
                self._apply(queue.cancel_reasons(self._watched()))
                deadline = time.monotonic() + POLL_INTERVAL
                while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                    execution_id = requests.next(timeout=min(0.5, left))
                    if execution_id is not None and execution_id in self._watched():
                        self._apply({execution_id: queue.cancel_reasons([execution_id]).get(execution_id,
                                                                                             "cancelled")})
            except Exception as exc:  # Redis down: the executions go on; subscribe again
                log.debug("cancel watcher: %s", exc)
                if requests is not None:
                    requests.close()
                    requests = None
                self._stop.wait(POLL_INTERVAL)
        if requests is not None:
            requests.close()

    def _watched(self) -> dict[str, "Cancellation"]:
        """The watched executions not cancelled yet."""
        return {i: c for i, c in self._running().items() if not c.is_set}

    def _apply(self, reasons: Mapping[str, str]) -> None:
        watched = self._watched()
        for execution_id, reason in reasons.items():
            cancellation = watched.get(execution_id)
            if cancellation is not None:
                log.info("%s: cancel requested (%s)", execution_id, reason)
                cancellation.cancel(reason)
