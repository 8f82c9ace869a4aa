"""A swarm task's output and state, read through the manager wherever the task runs (shared by
the built-in swarm plugins, not a plugin itself): the task's log (`/tasks/{id}/logs`) and its status
in the task list (`Status.ContainerStatus.ExitCode`); a task whose node is down or gone has ended
with its outcome unknown.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

from cronium.core.errors import PhaseError
from cronium.plugins import _docker

#: Task states after which a task's container has run (or never will).
DONE_STATES = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")


def wait_for_task(client, service_id: str, timeout: float, phase: str) -> dict:
    """The service's task once its container exists (or it ended); a `PhaseError` when it was
    rejected, or not started within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        tasks = client.api.tasks(filters={"service": service_id})
        for task in tasks:
            status = task.get("Status") or {}
            if (status.get("ContainerStatus") or {}).get("ContainerID"):
                return task
            if status.get("State") in DONE_STATES:
                raise PhaseError(phase, f"the swarm could not run the {phase} task: {status.get('State')}: "
                                        f"{status.get('Err') or status.get('Message')}",
                                 hint="check the image on the node (`cronium images push`) and the placement")
        if time.monotonic() >= deadline:
            pending = "; ".join(f"{(t.get('Status') or {}).get('State')}: {(t.get('Status') or {}).get('Err') or ''}"
                                for t in tasks) or "no task yet"
            raise PhaseError(phase, f"the swarm did not start the {phase} task within {timeout:g}s ({pending})",
                             hint="check that a node matches the placement and has the image (swarm.task_timeout)")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def task_container(task: dict) -> str:
    """The task's container id (on whichever node the task runs)."""
    return task["Status"]["ContainerStatus"]["ContainerID"]


def task_logs(client, task_id: str, *, follow: bool, timeout: float | None = None
              ) -> Iterator[tuple[int, bytes | None]]:
    """The task's output as the manager serves it (`/tasks/{id}/logs`, from whichever node runs
    the task), demultiplexed like the attach stream (`_docker.demux`). With `timeout`, the stream
    is closed after that many seconds (the iteration then ends)."""
    yield from _closing(_open_task_logs(client, task_id, follow), timeout)


def _open_task_logs(client, task_id: str, follow: bool):
    api = client.api
    response = api._get(api._url("/tasks/{0}/logs", task_id),
                        params={"stdout": 1, "stderr": 1, "follow": int(follow)}, stream=True, timeout=None)
    api._raise_for_status(response)
    return response


def task_output(client, task_id: str, *, poll: float = 0.25, drain_timeout: float = 30.0
                ) -> Iterator[tuple[int, bytes | None]]:
    """The task's whole output in order, from its start until it ended, wherever it runs. A
    followed task log of the swarm does not end when the task does: a watcher closes it once the
    task has ended (or its node is down or gone), then what it had not delivered yet is read from
    a complete, unfollowed read (the bytes already yielded are skipped)."""
    response = _open_task_logs(client, task_id, follow=True)
    done = threading.Event()

    def watch():
        while not done.wait(poll):
            if task_ended(client, task_id):
                break
        interrupt(response)

    threading.Thread(target=watch, daemon=True, name=f"cronium-task-{task_id[:12]}").start()
    seen = 0
    try:
        for stream, data in _closing(response, None):
            seen += len(data or b"")
            yield stream, data
    finally:
        done.set()
    yield from _skip(task_logs(client, task_id, follow=False, timeout=drain_timeout), seen)


def _skip(frames, count: int) -> Iterator[tuple[int, bytes | None]]:
    for stream, data in frames:
        if data is not None and count:
            cut = min(count, len(data))
            data, count = data[cut:], count - cut
            if not data:
                continue
        yield stream, data


def task_ended(client, task_id: str) -> bool:
    """Whether the task is over: in a final state, gone, or on a node that is down or gone."""
    state, _task, node_lost = task_state(client, task_id)
    return node_lost is not None or state in DONE_STATES


def task_state(client, task_id: str) -> tuple[str | None, dict | None, str | None]:
    """(state, task, why its node is lost or None) as the manager sees it; state None: no task."""
    from docker.errors import NotFound

    try:
        task = client.api.inspect_task(task_id)
    except NotFound:
        return None, None, "the task is gone from the swarm (its node was removed?)"
    status = task.get("Status") or {}
    state = status.get("State")
    if state in DONE_STATES and (status.get("ContainerStatus") or {}).get("ExitCode") is not None:
        return state, task, None
    try:
        node = client.api.inspect_node(task["NodeID"])
    except NotFound:
        return state, task, f"its node {task['NodeID'][:12]} was removed from the swarm"
    if (node.get("Status") or {}).get("State") == "down":
        host = (node.get("Description") or {}).get("Hostname") or task["NodeID"][:12]
        return state, task, f"its node {host} is down (left the swarm, or its engine stopped)"
    return state, task, None


def _closing(response, timeout: float | None) -> Iterator[tuple[int, bytes | None]]:
    timer = threading.Timer(timeout, interrupt, (response,)) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        yield from _docker.demux(_body(response))
    finally:
        if timer:
            timer.cancel()
        response.close()


def interrupt(response) -> None:
    """End a streamed response another thread is reading: its socket is shut down first (closing
    the response alone does not wake a read blocked on it)."""
    import socket

    try:
        raw = response.raw._fp.fp.raw
        getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass  # already closed
    response.close()


def _body(response) -> Iterator[bytes]:
    try:
        yield from response.raw.stream(_docker.RECV_SIZE, decode_content=False)
    except Exception:  # closed under us (timeout, stop): the stream ends
        return
