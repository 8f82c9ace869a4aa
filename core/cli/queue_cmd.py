"""The queue from the command line: `submit`, `worker`, `scheduler`, `serve`, `jobs`, `cancel`, `queue`."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time

import click
from cronium.core.errors import CroniumError, UsageError
from cronium.core.model import FINAL_STATUSES, Status

from .run_cmd import parse_input

#: Statuses an execution can have, for --status.
STATUSES = tuple(s.value for s in Status)


def _when(ts) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def _metrics_flags(app, port, host) -> None:
    app.flags.update({"metrics.port": port, "metrics.host": host})


def _start_metrics(app, metrics):
    """The metrics endpoint, when metrics.port (or --metrics-port) is set."""
    cfg = app.config
    if not cfg["metrics.port"]:
        return None
    from cronium.core.fleet.metrics import MetricsServer

    try:
        server = MetricsServer(metrics, cfg["metrics.host"], cfg["metrics.port"]).start()
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {cfg['metrics.host']}:{cfg['metrics.port']}: {exc.strerror}",
                         hint="choose another --metrics-port") from None
    logging.getLogger("cronium.metrics").info("metrics on http://%s:%d/metrics", *server.address[:2])
    return server


class _Signals:
    """First SIGINT/SIGTERM: stop taking work and drain. Second: cancel what still runs."""

    #: A repeat within this many seconds is the same request (e.g. sent to the process and its group).
    DEBOUNCE = 1.0

    def __init__(self):
        self.stop = threading.Event()
        self.force = threading.Event()
        self._first = 0.0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.stop.is_set():
            if time.monotonic() - self._first < self.DEBOUNCE:
                return
            logging.getLogger("cronium").warning("%s again: cancelling running executions", name)
            self.force.set()
        else:
            logging.getLogger("cronium").info("%s: finishing running executions (again to cancel them)", name)
            self._first = time.monotonic()
            self.stop.set()


def _run_worker_process(app, *, concurrency, with_scheduler: bool, metrics_flags: tuple, log_level: str,
                        with_worker: bool = True) -> None:
    """The body of `worker`, `scheduler` and `serve`; `metrics_flags` is (--metrics-port, --metrics-host)."""
    from cronium.core.fleet.metrics import CroniumMetrics
    from cronium.core.fleet.queue import Queue

    _setup_logging(log_level)
    _metrics_flags(app, *metrics_flags)

    runtime = app.runtime(warm_pool=with_worker)  # a long-lived worker keeps sidecars warm
    metrics = CroniumMetrics(Queue(runtime.store, app.config))
    signals = _Signals()
    worker = scheduler = None
    threads = []
    if with_worker:
        from cronium.core.fleet.worker import Worker

        worker = Worker(runtime, concurrency=concurrency, metrics=metrics)
        worker.start()
        thread = threading.Thread(target=worker.serve, name="cronium-worker-loop", daemon=True)
        thread.start()
        threads.append(thread)
    if with_scheduler:
        from cronium.core.fleet.scheduler import Scheduler

        scheduler = Scheduler(runtime, metrics=metrics)
        scheduler.start()
        thread = threading.Thread(target=scheduler.serve, name="cronium-scheduler-loop", daemon=True)
        thread.start()
        threads.append(thread)
    server = _start_metrics(app, metrics)
    try:
        while not signals.stop.wait(0.5):
            if not all(t.is_alive() for t in threads):
                raise CroniumError("a worker or scheduler loop stopped unexpectedly; see the log above")
    finally:
        if scheduler is not None:
            scheduler.stop()
        if worker is not None:
            stopper = threading.Thread(target=worker.stop, daemon=True)
            stopper.start()
            while stopper.is_alive():
                if signals.force.is_set():
                    worker.cancel_all("the worker was told to stop now (second signal)")
                stopper.join(0.2)
        if server is not None:
            server.stop()
        runtime.close()


_log_level = click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
                          show_default=True, help="What the process logs to stderr.")
_metrics_port = click.option("--metrics-port", type=int, metavar="PORT",
                             help="Serve Prometheus metrics on this port (default: metrics.port; 0 = off).")
_metrics_host = click.option("--metrics-host", metavar="HOST",
                             help="Address for the metrics endpoint (default: metrics.host, 127.0.0.1).")
_concurrency = click.option("--concurrency", "-c", type=click.IntRange(1, 256), metavar="N",
                            help="Executions this worker runs at once (default: worker.concurrency).")


@click.command()
@_concurrency
@_metrics_port
@_metrics_host
@_log_level
@click.pass_obj
def worker(app, concurrency, metrics_port, metrics_host, log_level):
    """Run queued executions: one consumer of the queue's consumer group, until SIGTERM/SIGINT.

    Entries are acknowledged only after the execution's final record is written; entries of
    workers whose heartbeat expired are taken over; what dead workers left in Docker on this host
    is reaped at start and every worker.reap_interval seconds. The first SIGTERM/SIGINT stops
    taking work and waits up to worker.shutdown_grace for running executions; a second cancels them.
    """
    _run_worker_process(app, concurrency=concurrency, with_scheduler=False,
                        metrics_flags=(metrics_port, metrics_host), log_level=log_level)


@click.command()
@_metrics_port
@_metrics_host
@_log_level
@click.pass_obj
def scheduler(app, metrics_port, metrics_host, log_level):
    """Enqueue the runs of scheduled jobs, until SIGTERM/SIGINT.

    Run several for fail-over: one leads (a Redis lease, scheduler.lease_ttl), the others stand
    by and take over when the leader stops renewing. Each fire time is enqueued exactly once.
    """
    _run_worker_process(app, concurrency=None, with_scheduler=True, with_worker=False,
                        metrics_flags=(metrics_port, metrics_host), log_level=log_level)


@click.command()
@_concurrency
@_metrics_port
@_metrics_host
@_log_level
@click.pass_obj
def serve(app, concurrency, metrics_port, metrics_host, log_level):
    """Run a scheduler and a worker in one process (the single-machine setup), until SIGTERM/SIGINT."""
    _run_worker_process(app, concurrency=concurrency, with_scheduler=True,
                        metrics_flags=(metrics_port, metrics_host), log_level=log_level)


def _wait_final(store, execution_id: str, timeout: float | None) -> dict:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        rec = store.records.get(execution_id)
        if rec.get("status") in FINAL_STATUSES:
            return rec
        if deadline is not None and time.monotonic() > deadline:
            raise CroniumError(f"{execution_id} is still {rec.get('status')} after {timeout:g}s")
        time.sleep(0.2)


def _record_summary(rec: dict) -> str:
    lines = [f"status: {rec.get('status')}" + (f" (exit code {rec['exit_code']})" if rec.get("exit_code") is not None
                                                else "")]
    if rec.get("error"):
        lines.append(f"error: {rec['error']}")
    lines.append(f"execution: {rec['id']}")
    if rec.get("output") is not None:
        lines.append(f"output: {json.dumps(rec['output'], ensure_ascii=False)}")
    if rec.get("condition") is not None:
        lines.append(f"condition: {json.dumps(rec['condition'])}")
    return "\n".join(lines)


@click.command()
@click.argument("job")
@click.option("--input", "input_", metavar="JSON|@FILE", help="The execution's input (default: the job's input).")
@click.option("--wait", is_flag=True, help="Wait until the execution ends; exit with its status like `cronium run`.")
@click.option("--timeout", "wait_timeout", type=float, metavar="SECONDS", help="With --wait: give up after this long.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the enqueue result, or with --wait the record).")
@click.pass_obj
def submit(app, job, input_, wait, wait_timeout, as_json):
    """Enqueue one execution of the deployed JOB; prints its execution id.

    A worker (`cronium worker` or `cronium serve`) runs it. The job's concurrency policy applies:
    with `forbid`, submitting while a run is active fails (exit 1); with `replace`, the active run
    is cancelled.
    """
    from cronium.core.deploy.registry import DeploymentRegistry
    from cronium.core.fleet.queue import Queue
    from cronium.core.model import EXIT_CODES

    store = app.runtime().store
    definition = DeploymentRegistry(store).job(job)
    value = parse_input(input_) if input_ is not None else definition.input
    import getpass
    import socket

    result = Queue(store, app.config).enqueue(definition, input=value, trigger="manual",
                                             metadata={"submitted_by": f"{getpass.getuser()}@{socket.gethostname()}"})
    if not result.created:
        raise CroniumError(f"job '{job}' was not enqueued: it has an active execution and its concurrency policy "
                           "is forbid", hint="wait for it, or cancel it with `cronium cancel EXECUTION` "
                                             "(see `cronium jobs list --job " + job + "`)")
    for other in result.replaced:
        click.echo(f"cancelling {other} (concurrency policy replace)", err=True)
    if not wait:
        if as_json:
            click.echo(json.dumps({"execution_id": result.execution_id, "job": job, "replaced": result.replaced}))
        else:
            click.echo(result.execution_id)
        return
    click.echo(f"{result.execution_id} queued; waiting", err=True)
    rec = _wait_final(store, result.execution_id, wait_timeout)
    if as_json:
        click.echo(json.dumps(rec, indent=2, ensure_ascii=False))
    else:
        click.echo(_record_summary(rec), err=True)
    status = rec["status"]
    if status == "succeeded":
        sys.exit(0)
    if status == "failed":
        sys.exit(rec.get("exit_code") or 1)
    sys.exit(EXIT_CODES.get(status, 1))


@click.command()
@click.argument("execution_id")
@click.option("--wait", is_flag=True, help="Wait until the execution has ended.")
@click.option("--timeout", "wait_timeout", type=float, default=120.0, show_default=True, metavar="SECONDS",
              help="With --wait: give up after this long.")
@click.pass_obj
def cancel(app, execution_id, wait, wait_timeout):
    """Cancel EXECUTION_ID from any host: a queued execution is marked cancelled and never runs; a
    running one is stopped by the worker (or `cronium run`) that owns it, and cleaned up. Exit 1 if
    it already ended."""
    import socket

    from cronium.core.errors import NotFound
    from cronium.core.fleet.queue import Queue

    store = app.runtime().store
    outcome = Queue(store, app.config).cancel(execution_id, f"cancelled with `cronium cancel` on {socket.gethostname()}")
    if outcome == "missing":
        raise NotFound(f"no execution '{execution_id}'", hint="list executions with `cronium jobs list`")
    if outcome.startswith("final:"):
        raise CroniumError(f"{execution_id} already ended ({outcome.split(':', 1)[1]}): nothing to cancel")
    if outcome == "cancelled":
        click.echo(f"{execution_id} cancelled (it was still queued)")
        return
    click.echo(f"{execution_id}: cancel requested; the worker (or `cronium run`) running it stops it")
    if wait:
        rec = _wait_final(store, execution_id, wait_timeout)
        click.echo(f"{execution_id} {rec['status']}")


@click.group()
def jobs():
    """Executions and their statuses (queued, running, finished), with their deployed jobs."""


@jobs.command("list")
@click.option("--job", "job_name", metavar="NAME", help="Only executions of this job.")
@click.option("--status", type=click.Choice(STATUSES), multiple=True, help="Only these statuses (repeatable).")
@click.option("--limit", "-n", type=click.IntRange(1, 10000), default=30, show_default=True,
              help="How many executions, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
@click.pass_obj
def list_jobs(app, job_name, status, limit, as_json):
    """Recent executions, newest first: id, job, status, trigger, attempt, times, host."""
    store = app.runtime().store
    want = set(status)
    scan = limit if not (job_name or want) else max(limit * 20, 1000)
    rows = [r for r in store.records.latest(scan)
            if (not job_name or r.get("job_id") == job_name) and (not want or r.get("status") in want)][:limit]
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.items() if k not in ("definition", "context")} for r in rows],
                              indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no executions")
        return
    click.echo(f"{'EXECUTION':22} {'JOB':20} {'STATUS':10} {'TRIGGER':9} {'TRY':>3}  {'CREATED':19}  {'DURATION':>8}  HOST")
    for r in rows:
        duration = "-"
        if r.get("finished_at") and r.get("started_at"):
            duration = f"{r['finished_at'] - r['started_at']:.1f}s"
        click.echo(f"{r.get('id', '?'):22} {r.get('job_id', '?')[:20]:20} {r.get('status', '?'):10} "
                   f"{r.get('trigger') or 'run':9} {r.get('attempt') or '1':>3}  {_when(r.get('queued_at') or r.get('created_at')):19}  "
                   f"{duration:>8}  {r.get('host') or '-'}")


@jobs.command("show")
@click.argument("ident", metavar="EXECUTION|JOB")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show_job(app, ident, as_json):
    """An execution's record with the deployment job it ran (an exec_… id), or a deployed job with
    its recent executions (a job name)."""
    from cronium.core.deploy.definition import JobDefinition
    from cronium.core.deploy.registry import DeploymentRegistry

    from .deploy_cmd import describe_job, job_lines
    from .records_cmd import _human_record

    store = app.runtime().store
    registry = DeploymentRegistry(store)
    if ident.startswith("exec_"):
        rec = store.records.get(ident)
        definition = JobDefinition.from_json(json.dumps(rec["definition"])) if rec.get("definition") else None
        if as_json:
            click.echo(json.dumps({"execution": rec, "job": describe_job(definition) if definition else None},
                                  indent=2, ensure_ascii=False))
            return
        shown = {k: v for k, v in rec.items() if k not in ("definition", "history", "metadata")}
        click.echo(_human_record(shown))
        if rec.get("input") is not None:
            click.echo(f"{'input':12} {json.dumps(rec['input'], ensure_ascii=False)}")
        meta = rec.get("metadata") or {}
        if meta:
            click.echo(f"{'metadata':12} {json.dumps(meta, ensure_ascii=False)}")
        for h in rec.get("history") or []:
            click.echo(f"{'earlier':12} {h['status']} on {h['owner'] or '?'} ({h.get('error') or 'owner died'}), "
                       f"taken over {_when(h['at'])}")
        if definition is not None:
            click.echo("")
            click.echo(f"deployment {definition.deployment} ({definition.source}), as enqueued:")
            for line in job_lines(definition):
                click.echo(line)
        return
    definition = registry.job(ident)
    recent = [r for r in store.records.latest(1000) if r.get("job_id") == ident][:10]
    if as_json:
        click.echo(json.dumps({"job": describe_job(definition),
                               "executions": [{k: r.get(k) for k in ("id", "status", "trigger", "attempt",
                                                                      "created_at", "finished_at")} for r in recent]},
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"deployment {definition.deployment} ({definition.source})")
    for line in job_lines(definition):
        click.echo(line)
    click.echo("")
    click.echo("recent executions:" if recent else "no executions yet")
    for r in recent:
        click.echo(f"  {r['id']}  {r.get('status', '?'):10} {r.get('trigger') or 'run':9} {_when(r.get('created_at'))}")


@click.group()
def queue():
    """The queue itself: depth, workers, dead letters."""


@queue.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def queue_status(app, as_json):
    """Entries waiting, running (pending), delayed and dead-lettered; consumers and live processes."""
    from cronium.core.fleet.queue import Queue

    q = Queue(app.runtime().store, app.config)
    stats = q.stats()
    beats = q.store.owners.heartbeats()
    if as_json:
        click.echo(json.dumps({**stats, "heartbeats": beats}, indent=2))
        return
    click.echo(f"waiting {stats['waiting']}, running {stats['pending']}, delayed {stats['delayed']}, "
               f"dead letters {stats['dead_letters']}")
    for c in stats["consumers"]:
        click.echo(f"  consumer {c['name']}: {c['pending']} pending, idle {c['idle_ms'] / 1000:.1f}s, "
                   f"{'alive' if c['alive'] else 'heartbeat expired'}")
    for hb in beats:
        extra = f", running {hb['running']}/{hb['concurrency']}" if "running" in hb else ""
        click.echo(f"  {hb.get('kind', '?'):9} {hb['owner']} last beat {time.time() - hb.get('t', 0):.1f}s ago{extra}")


@queue.command("dead")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def queue_dead(app, as_json):
    """Entries moved to the dead-letter stream, newest first, with the reason."""
    from cronium.core.fleet.queue import Queue

    entries = Queue(app.runtime().store, app.config).dead_letters()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo("no dead letters")
    for e in entries:
        click.echo(f"{_when(float(e.get('at', 0)))}  {e.get('execution')}  job {e.get('job')}  "
                   f"deliveries {e.get('deliveries')}: {e.get('reason')}")


def register(cli: click.Group) -> None:
    for command in (submit, worker, scheduler, serve, jobs, cancel, queue):
        cli.add_command(command)
