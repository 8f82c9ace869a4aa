"""The job lifecycle driver: one execution, phase by phase, every phase done through hooks.

    validate ─▶ record ─▶ token ─▶ network ─▶ sidecar (ready) ┐
                                          └▶ job container created + attached ┘─▶ start ─▶ logs
    ─▶ exit / timeout / cancel ─▶ final record ─▶ job_finished ─▶ cleanup (always)

In a long-lived process (`Runtime(warm_pool=True)`) a plugin may give the execution a pooled slot
instead (`claim_slot`): network, booted sidecar and started job container in one phase, `slot`.

Every resource a plugin creates is registered in the execution's `ResourceRegistry` the moment it
exists and is removed in reverse order on every path — success, failure, timeout, cancel, and a
plugin raising halfway through setup; what the sidecar launch and the job container's start (which
run at the same time) registered is removed at the same time, each in its own reverse order.
Setup time is not charged to the job's timeout.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, replace
from typing import Any, Callable, NamedTuple

from .config import parse_size
from .errors import Cancelled, CroniumError, PhaseError, StoreUnavailable
from .executor import ExitStatus, JobHandle, hooks_for_executor, merge_options, require_security
from .logs import LogPump
from .model import (
    ContainerOptions,
    DeferredSecret,
    ExecutionInfo,
    JobLaunch,
    JobResult,
    JobSpec,
    Status,
)
from .owners import parse_owner
from .plugins import Hooks
from .record import new_record
from .runtime import Runtime
from .script_launch import script_command, script_stdin
from .spec import release_deadline, resolve, validate

RUNTIME_API_URL = "http://runtime-api:8081"

EventCallback = Callable[[str, str], None]


class ResourceRegistry:
    """Undo actions for everything an execution created, run in reverse order."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str, "Callable[[], None] | ResourceRegistry"]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, name: str, remove: "Callable[[], None] | ResourceRegistry") -> None:
        with self._lock:
            self._items.append((kind, name, remove))

    def __len__(self) -> int:
        return len(self._items)

    def branches(self, count: int) -> "list[ResourceRegistry]":
        """`count` registries for set-up steps that run at the same time (the sidecar launch and
        the job container's start): when the reverse order reaches them, they are released at the
        same time, each in its own reverse order."""
        children = [ResourceRegistry() for _ in range(count)]
        for i, child in enumerate(children):
            self.add("branch", str(i), child)
        return children

    def release_all(self) -> list[tuple[str, BaseException]]:
        """Remove everything in reverse order; returns failures, never raises. Consecutive
        resources of the same kind (e.g. two containers, the branches) are removed at the same time."""
        failures: list[tuple[str, BaseException]] = []
        while True:
            with self._lock:
                if not self._items:
                    break
                kind = self._items[-1][0]
                group = []
                while self._items and self._items[-1][0] == kind:
                    group.append(self._items.pop())
            threads = [threading.Thread(target=self._remove, args=(item, failures)) for item in group[1:]]
            for t in threads:
                t.start()
            self._remove(group[0], failures)
            for t in threads:
                t.join()
        return failures

    @staticmethod
    def _remove(item: tuple[str, str, Callable[[], None]], failures: list) -> None:
        kind, name, remove = item
        try:
            if isinstance(remove, ResourceRegistry):
                failures.extend(remove.release_all())
            else:
                remove()
        except Exception as exc:
            failures.append((f"{kind} {name}", exc))


class Cancellation:
    """Set from a signal handler or another thread to stop an execution."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self, phase: str) -> None:
        if self._event.is_set():
            raise Cancelled(f"cancelled during {phase}: {self.reason}")


@dataclass
class _Run:
    """Mutable state of one execution while it runs."""

    execution: ExecutionInfo
    spec: JobSpec
    #: The hooks of this execution's executor (`hooks_for_executor`).
    hooks: Hooks
    resources: ResourceRegistry
    timings: dict[str, float]
    warnings: list[str]
    token: Any = None
    current_phase: str = "prepare"
    handle: JobHandle | None = None
    pump: LogPump | None = None
    job_started_at: float | None = None
    spooled: bool = False
    sidecar_future: Any = None
    usage: dict[str, Any] | None = None  # memory_peak / cpu_seconds from the executor's ExitStatus
    prepared: tuple[ContainerOptions, JobLaunch] | None = None  # see Orchestrator._prepare


class _PhaseTimer:
    """Times one phase, reports it to the events callback, and turns anything a plugin raises
    inside it into a `PhaseError` naming the phase."""

    def __init__(self, run: _Run, name: str, events: EventCallback):
        self.run, self.name, self.events = run, name, events

    def __enter__(self):
        self.t = time.time()
        self.run.current_phase = self.name
        self.events(self.name, "start")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.run.timings[self.name] = time.time() - self.t
        self.events(self.name, "done" if exc is None else "failed")
        if exc is None or isinstance(exc, (PhaseError, Cancelled)) or not isinstance(exc, Exception):
            return False
        reason = str(exc) if isinstance(exc, CroniumError) else f"{type(exc).__name__}: {exc}"
        raise PhaseError(self.name, reason, hint=getattr(exc, "hint", None)) from exc


class Orchestrator:
    """Runs executions through the lifecycle. One per process; `run()` is thread-safe."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="cronium-phase")

    # --- public API ------------------------------------------------------------------------
    def run(self, spec: JobSpec, *, events: EventCallback | None = None,
            cancel: Cancellation | None = None,
            on_result: Callable[[JobResult], None] | None = None) -> JobResult:
        """Run one execution to its end and clean up. Raises `UsageError` for a bad spec (nothing
        created), `StoreUnavailable`/`EngineUnavailable` before anything is created; every later
        failure becomes a result with status `error`. `on_result` is called with the final result
        before cleanup starts (so a CLI can report it while cleanup runs)."""
        rt = self.runtime
        events = events or (lambda phase, state: None)
        cancel = cancel or Cancellation()
        t0 = time.time()
        validate(spec, rt.config)  # bad input: exit 2 before anything else
        rt.connect()  # Redis and the engine must answer before anything is created
        spec, execution = resolve(spec, rt.config, owner=rt.owner, installation=rt.installation)
        hooks = hooks_for_executor(rt.hooks, execution.executor)  # an unknown executor: exit 2, nothing created
        startup_failures = rt.start()
        run = _Run(execution, spec, hooks, ResourceRegistry(), {},
                   [f"plugin {name} failed in startup: {exc}" for name, exc in startup_failures])
        rt.store.records.create(execution.execution_id, _first_record(run, rt.owner), created_at=execution.created_at)
        run.timings["prepare"] = time.time() - t0
        outcome = _Outcome(Status.ERROR, None, "interrupted", None)
        try:
            outcome = self._outcome(run, events, cancel)
        finally:
            result = self._finish(run, outcome, events, on_result)
        return result

    def _outcome(self, run: _Run, events: EventCallback, cancel: Cancellation) -> "_Outcome":
        """Run the phases; whatever happens becomes the execution's status (never an exception)."""
        try:
            cancel.raise_if_set("setup")
            status, exit_code = self._execute(run, events, cancel)
            return _Outcome(status, exit_code, f"cancelled: {cancel.reason}" if status == Status.CANCELLED else None)
        except Cancelled as exc:
            return _Outcome(Status.CANCELLED, None, exc.message)
        except PhaseError as exc:
            return _Outcome(Status.ERROR, None, str(exc), exc.phase)
        except CroniumError as exc:
            return _Outcome(Status.ERROR, None, str(exc), getattr(exc, "phase", None) or run.current_phase)
        except KeyboardInterrupt:
            return _Outcome(Status.CANCELLED, None, "interrupted")
        except Exception as exc:  # a plugin bug must still end in a result and a cleanup
            return _Outcome(Status.ERROR, None, f"{type(exc).__name__}: {exc}", run.current_phase)

    # --- phases ----------------------------------------------------------------------------
    def _execute(self, run: _Run, events: EventCallback, cancel: Cancellation) -> tuple[Status, int | None]:
        rt, hooks, ex = self.runtime, run.hooks, run.execution

        with self._phase(run, "token", events):
            run.token = hooks.issue_token(execution=ex, runtime=rt)
            hooks.strict.token_issued(execution=ex, claims=run.token.claims)
        cancel.raise_if_set("setup")

        if not self._claim_slot(run, events):
            self._set_up(run, events, cancel)
        cancel.raise_if_set("setup")

        with self._phase(run, "job", events):
            sinks = hooks.log_sinks(execution=ex, runtime=rt)
            run.pump = LogPump(run.handle.chunks(), sinks, max_line=rt.config["logs.max_line_bytes"],
                               max_bytes=parse_size(rt.config["logs.max_bytes"]),
                               on_sink_error=lambda name, exc: run.warnings.append(f"log sink {name} failed: {exc}"))
            run.pump.start()
            run.handle.release()
            run.job_started_at = time.time()
            # The deadline counts from the release: set-up may have waited at unbounded gates.
            self._record(run, {"status": Status.RUNNING, "started_at": run.job_started_at,
                               "deadline": release_deadline(rt.config, run.execution, run.job_started_at)},
                         only_if=Status.PENDING)
            hooks.strict.job_started(execution=ex, container_id=run.handle.container_id, runtime=rt)
            outcome = self._wait(run, cancel)
            exit_status = run.handle.exit_status()
            run.usage = {k: v for k, v in (("memory_peak", exit_status.memory_peak),
                                           ("cpu_seconds", exit_status.cpu_seconds)) if v is not None}
        if outcome == "timed_out":
            return Status.TIMED_OUT, exit_status.exit_code
        if outcome == "cancelled":
            return Status.CANCELLED, exit_status.exit_code
        return _status_of(exit_status), exit_status.exit_code

    def _prepare(self, run: _Run) -> tuple[ContainerOptions, JobLaunch]:
        """The merged options of the sidecar and the job's launch (computed once per execution)."""
        if run.prepared is None:
            run.prepared = (self._options(run, "sidecar"), self._launch(run, self._options(run, "job")))
        return run.prepared

    def _claim_slot(self, run: _Run, events: EventCallback) -> bool:
        """In a long-lived process, ask `claim_slot` for a pooled slot (network, booted sidecar,
        started job container). True when a plugin gave one: network and sidecar are then set up."""
        rt, hooks, ex = self.runtime, run.hooks, run.execution
        if not rt.warm_pool:
            return False
        with self._phase(run, "slot", events):
            sidecar_options, launch = self._prepare(run)
            slot = hooks.claim_slot(execution=ex, token=run.token, sidecar_options=sidecar_options, launch=launch,
                                    runtime=rt, resources=run.resources)
            if slot is None:
                return False
            run.handle = slot.handle
            hooks.strict.network_created(execution=ex, network=slot.network)
            run.handle.start()
            hooks.strict.sidecar_started(execution=ex, sidecar=slot.sidecar)
        run.timings["sidecar_ready"] = slot.sidecar.ready_seconds
        return True

    def _set_up(self, run: _Run, events: EventCallback, cancel: Cancellation) -> None:
        """The network, then the sidecar booting while the job container is created and started."""
        rt, hooks, ex = self.runtime, run.hooks, run.execution
        with self._phase(run, "network", events):
            network = hooks.create_network(execution=ex, runtime=rt, resources=run.resources)
            hooks.strict.network_created(execution=ex, network=network)
        cancel.raise_if_set("setup")

        with self._phase(run, "sidecar", events):
            sidecar_options, launch = self._prepare(run)
            # Boot the sidecar and create + start the job container at the same time; the job
            # container waits for its script until the sidecar is ready (handle.release()). What
            # each registers is removed at the same time as the other's, too.
            sidecar_resources, job_resources = run.resources.branches(2)
            sidecar_future = run.sidecar_future = self._pool.submit(
                hooks.launch_sidecar, execution=ex, network=network, token=run.token,
                options=sidecar_options, runtime=rt, resources=sidecar_resources)
            try:
                run.handle = hooks.start_job(execution=ex, network=network, launch=launch, runtime=rt,
                                             resources=job_resources)
                run.handle.start()
            except BaseException:
                # Let the sidecar launch finish so that what it created is registered for cleanup.
                sidecar_future.exception()
                raise
            sidecar = sidecar_future.result()
            hooks.strict.sidecar_started(execution=ex, sidecar=sidecar)
        run.timings["sidecar_ready"] = sidecar.ready_seconds

    def _wait(self, run: _Run, cancel: Cancellation) -> str:
        """Wait for the job's output to end, its timeout, or a cancel. Returns the outcome."""
        pump, grace = run.pump, self.runtime.config["limits.stop_grace"]
        deadline = run.job_started_at + run.execution.timeout
        while not pump.done.wait(min(0.05, max(0.0, deadline - time.time()))):
            if cancel.is_set:
                run.handle.stop(grace)
                pump.join(grace + 10)
                return "cancelled"
            if time.time() >= deadline:
                run.handle.stop(grace)
                pump.join(grace + 10)
                return "timed_out"
        pump.join()
        return "exited"

    def _finish(self, run: _Run, outcome: "_Outcome", events: EventCallback, on_result) -> JobResult:
        """The final record, `job_finished` and `on_result` (the result then holds the warnings so
        far); then cleanup, always, and the `cleanup` hook with the completed result (cleanup
        timing, every warning), which is also what `run()` returns."""
        rt, ex = self.runtime, run.execution
        result = self._result(run, outcome)
        self._record(run, {"status": result.status, "exit_code": result.exit_code, "finished_at": result.finished_at,
                           "timings": result.timings, "error": result.error or "",
                           "error_phase": result.error_phase or "", "log_lines": result.log_lines,
                           "logs_truncated": result.logs_truncated, "warnings": run.warnings, **(run.usage or {}),
                           **{k: v for k, v in (("output", result.output), ("condition", result.condition))
                              if v is not None}})
        for name, exc in run.hooks.job_finished(execution=ex, result=result, runtime=rt):
            run.warnings.append(f"plugin {name} failed in job_finished: {exc}")
        if on_result is not None:
            on_result(result)
        self._cleanup(run, events)
        result = replace(result, timings=dict(run.timings), warnings=tuple(run.warnings))
        for name, exc in run.hooks.cleanup(execution=ex, result=result, runtime=rt):
            run.warnings.append(f"plugin {name} failed in cleanup: {exc}")
        self._record(run, {"timings": run.timings, "warnings": run.warnings})
        if run.spooled:
            rt.flush_spool(wait=rt.config["redis.spool_wait"])
        return replace(result, warnings=tuple(run.warnings))

    def _result(self, run: _Run, outcome: "_Outcome") -> JobResult:
        ex, finished = run.execution, time.time()
        if run.pump is not None:
            run.pump.join(5)
            run.pump.close_sinks(ok=outcome.status == Status.SUCCEEDED)
            if run.pump.error is not None and outcome.status == Status.SUCCEEDED:
                run.warnings.append(f"log stream ended with an error: {run.pump.error}")
        values = {}
        try:
            values = self.runtime.store.records.take_sidecar_results(ex.execution_id)
        except Exception as exc:
            run.warnings.append(f"could not read the job's output value: {exc}")
        return JobResult(
            execution_id=ex.execution_id, job_id=ex.job_id, status=str(outcome.status), exit_code=outcome.exit_code,
            started_at=ex.created_at, finished_at=finished, timings=dict(run.timings), output=values.get("output"),
            condition=values.get("condition"), error=outcome.error, error_phase=outcome.error_phase,
            log_lines=run.pump.lines if run.pump else 0, warnings=tuple(run.warnings),
            logs_truncated=bool(run.pump and run.pump.truncated))

    def _cleanup(self, run: _Run, events: EventCallback) -> None:
        """Remove everything the execution registered, in reverse order; never raises."""
        if run.sidecar_future is not None and not run.sidecar_future.done():
            # Interrupted while the sidecar was starting: let it register what it created first.
            futures_wait([run.sidecar_future], timeout=self.runtime.config["sidecar.ready_timeout"] + 60)
        events("cleanup", "start")
        t = time.time()
        for what, exc in run.resources.release_all():
            run.warnings.append(f"cleanup of {what} failed: {exc}")
        run.token = None  # the token lives only as long as the job
        run.timings["cleanup"] = time.time() - t
        events("cleanup", "done")

    # --- helpers ---------------------------------------------------------------------------
    def _record(self, run: _Run, fields: dict[str, Any], only_if: str = "") -> None:
        """Update the execution record — only while this process still owns it (a worker that was
        cut off must not overwrite what the worker that took over wrote), and with `only_if`, only
        while the status is still that one. While Redis is down, unconditional updates are spooled
        locally and written when it answers again: a job never fails because of its record."""
        rt = self.runtime
        try:
            rt.store.records.update_guarded(run.execution.execution_id, fields, status=only_if, owner=rt.owner)
        except StoreUnavailable as exc:
            if not only_if:
                rt.spool.put(run.execution.execution_id, fields)
            if not run.spooled:
                run.warnings.append(f"{exc.message}; the record was spooled to {rt.spool.dir} and is written "
                                    f"when Redis answers again (the output is in the file sink)")
            run.spooled = True

    def _phase(self, run: _Run, name: str, events: EventCallback) -> "_PhaseTimer":
        return _PhaseTimer(run, name, events)

    def _options(self, run: _Run, role: str) -> ContainerOptions:
        contribs = run.hooks.container_options(execution=run.execution, role=role, runtime=self.runtime)
        merged = merge_options(contribs)
        require_security(merged, role)
        return merged

    def _launch(self, run: _Run, options: ContainerOptions) -> JobLaunch:
        spec, ex = run.spec, run.execution
        env = dict(options.env)
        env.update(spec.env)
        if spec.job_type == "python":
            env.setdefault("PYTHONUNBUFFERED", "1")
        env.update({
            "CRONIUM_JOB_ID": ex.job_id,
            "CRONIUM_JOB_TYPE": ex.job_type,
            "CRONIUM_EXECUTION_MODE": "container",
            "CRONIUM_EXECUTION_ID": ex.execution_id,
            "CRONIUM_RUNTIME_API": RUNTIME_API_URL,
        })
        secret_env = dict(spec.secret_env)
        secret_env["CRONIUM_EXECUTION_TOKEN"] = DeferredSecret(lambda: _token_at_delivery(run))
        if spec.job_type == "container":
            command, stdin = tuple(spec.command), spec.script
        else:
            # The script arrives on stdin and is written to a file on the tmpfs work dir, so that
            # it is neither in argv nor in `docker inspect`, and tracebacks name the file.
            command, stdin = script_command(spec), script_stdin(spec)
        return JobLaunch(image=ex.image, command=command, env=env, secret_env=secret_env, options=options,
                         script=stdin, name=f"cronium-job-{ex.execution_id}")

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _token_at_delivery(run: _Run) -> str:
    """The token the job gets, signed again when the executor delivers it (the Docker executor:
    at release, past the network and sidecar-boot gates), so that its lifetime counts from there;
    the signing key is dropped then."""
    if run.token.renew is not None:
        run.token = replace(run.token.renew(), renew=None)
    return run.token.token.reveal()


def _status_of(exit_status: ExitStatus) -> Status:
    if exit_status.oom_killed:
        return Status.OOM_KILLED
    if exit_status.exit_code == 0:
        return Status.SUCCEEDED
    return Status.FAILED


class _Outcome(NamedTuple):
    status: Status
    exit_code: int | None
    error: str | None = None
    error_phase: str | None = None


def _first_record(run: _Run, owner: str) -> dict[str, Any]:
    ex, spec = run.execution, run.spec
    return new_record(
        execution_id=ex.execution_id, job_id=ex.job_id, job_name=ex.job_name, job_type=ex.job_type,
        namespace=ex.namespace, status=Status.PENDING, created_at=ex.created_at, spec=spec.describe(),
        attempt=spec.attempt, input=spec.input, metadata=spec.metadata, owner=owner, host=parse_owner(owner).host,
        deadline=ex.deadline)


def run_job(spec: JobSpec, runtime: Runtime | None = None, **kwargs: Any) -> JobResult:
    """Run one job through the whole lifecycle (the Python API behind `cronium run`)."""
    rt = runtime or Runtime()
    orch = Orchestrator(rt)
    try:
        return orch.run(spec, **kwargs)
    finally:
        orch.close()
        if runtime is None:
            rt.close()
