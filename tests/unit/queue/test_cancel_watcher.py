"""core/fleet/cancel.py: cancel requests (channel message or cancel key) become Cancellation.cancel(),
for one execution (`cronium run`) or the set a worker runs. The store's queue repository is
replaced by an in-memory one with the same two methods the watcher uses."""
from __future__ import annotations

import queue as queues
import threading
import time

from cronium.core.errors import StoreUnavailable
from cronium.core.fleet.cancel import CancelWatcher
from cronium.core.lifecycle import Cancellation


class FakeQueueStore:
    def __init__(self):
        self.keys: dict[str, str] = {}
        self.channel: queues.Queue[str] = queues.Queue()
        self.down = threading.Event()

    def request(self, execution_id: str, reason: str, *, publish: bool = True) -> None:
        self.keys[execution_id] = reason
        if publish:
            self.channel.put(execution_id)

    def cancel_reasons(self, execution_ids):
        if self.down.is_set():
            raise StoreUnavailable("redis://fake: down")
        return {i: self.keys[i] for i in execution_ids if i in self.keys}

    def cancel_requests(self):
        if self.down.is_set():
            raise StoreUnavailable("redis://fake: down")
        fake = self

        class Requests:
            def next(self, timeout):
                try:
                    return fake.channel.get(timeout=timeout)
                except queues.Empty:
                    return None

            def close(self):
                pass

        return Requests()


class FakeStore:
    def __init__(self):
        self.queue = FakeQueueStore()


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_published_request_cancels_the_watched_execution():
    store, cancellation = FakeStore(), Cancellation()
    watcher = CancelWatcher(store, "exec_1", cancellation).start()
    try:
        store.queue.request("exec_1", "stop it")
        wait_until(lambda: cancellation.is_set)
        assert cancellation.reason == "stop it"
    finally:
        watcher.stop()


def test_a_request_made_before_the_watcher_started_is_found_by_its_key():
    store, cancellation = FakeStore(), Cancellation()
    store.queue.request("exec_1", "early", publish=False)
    watcher = CancelWatcher(store, "exec_1", cancellation).start()
    try:
        wait_until(lambda: cancellation.is_set)
        assert cancellation.reason == "early"
    finally:
        watcher.stop()


def test_many_executions_only_the_requested_one_is_cancelled():
    store = FakeStore()
    running = {"exec_a": Cancellation(), "exec_b": Cancellation()}
    watcher = CancelWatcher(store, running=lambda: dict(running)).start()
    try:
        store.queue.request("exec_other", "not ours")
        store.queue.request("exec_b", "b please")
        wait_until(lambda: running["exec_b"].is_set)
        assert running["exec_b"].reason == "b please"
        assert not running["exec_a"].is_set
        running["exec_c"] = Cancellation()  # started later: its key is read on the next round
        store.queue.request("exec_c", "c too", publish=False)
        wait_until(lambda: running["exec_c"].is_set)
        assert not running["exec_a"].is_set
    finally:
        watcher.stop()


def test_the_watcher_survives_redis_being_down():
    store, cancellation = FakeStore(), Cancellation()
    store.queue.down.set()
    watcher = CancelWatcher(store, "exec_1", cancellation).start()
    try:
        store.queue.request("exec_1", "after the outage", publish=False)
        time.sleep(0.1)
        assert not cancellation.is_set
        store.queue.down.clear()
        wait_until(lambda: cancellation.is_set)
        assert cancellation.reason == "after the outage"
    finally:
        watcher.stop()
