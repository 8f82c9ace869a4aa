"""The long-lived processes of the fleet: `worker`, `scheduler` and `serve` (both in one process)."""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import click
from cronium.core.errors import CroniumError, UsageError

from .options import concurrency_option, process_options


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


def _start_dashboard(app, runtime, port: int | None, off: bool):
    """`serve`'s dashboard (in a thread of its own; the main thread keeps the signals), its URL printed;
    None when `off` (--no-dashboard) or dashboard.with_serve is false."""
    from cronium.core.errors import PortInUse

    from .dashboard_cmd import start_dashboard

    if off or not app.config["dashboard.with_serve"]:
        return None
    try:
        server = start_dashboard(app, port=port, store=runtime.store)
    except PortInUse as exc:
        if port is not None:
            runtime.close()
            raise
        # dashboard.port is taken (another `serve` on this host, a `cronium dashboard`): go on without it
        logging.getLogger("cronium.dashboard").warning("no dashboard: %s", exc.message)
        return None
    except BaseException:
        runtime.close()
        raise
    click.echo(f"dashboard on {server.url}", err=True)
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
                        with_worker: bool = True, dashboard: tuple | None = None) -> None:
    """The body of `worker`, `scheduler` and `serve`; `metrics_flags` is (--metrics-port, --metrics-host);
    `dashboard` (--dashboard-port, --no-dashboard) serves the dashboard too."""
    from cronium.core.fleet.metrics import CroniumMetrics
    from cronium.core.fleet.queue import Queue

    _setup_logging(log_level)
    _metrics_flags(app, *metrics_flags)

    runtime = app.runtime(warm_pool=with_worker)  # a long-lived worker keeps sidecars warm
    board = _start_dashboard(app, runtime, *dashboard) if dashboard is not None else None
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
        if board is not None:
            board.stop()
        runtime.close()


@click.command()
@concurrency_option
@process_options
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
@process_options
@click.pass_obj
def scheduler(app, metrics_port, metrics_host, log_level):
    """Enqueue the runs of scheduled jobs, until SIGTERM/SIGINT.

    Run several for fail-over: one leads (a Redis lease, scheduler.lease_ttl), the others stand
    by and take over when the leader stops renewing. Each fire time is enqueued exactly once.
    """
    _run_worker_process(app, concurrency=None, with_scheduler=True, with_worker=False,
                        metrics_flags=(metrics_port, metrics_host), log_level=log_level)


@click.command()
@concurrency_option
@process_options
@click.option("--dashboard-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve the web dashboard on this port (default: dashboard.port; 0 = a free one).")
@click.option("--no-dashboard", is_flag=True, help="Do not serve the dashboard (config: dashboard.with_serve = false).")
@click.pass_obj
def serve(app, concurrency, metrics_port, metrics_host, log_level, dashboard_port, no_dashboard):
    """Run a scheduler and a worker in one process (the single-machine setup), until SIGTERM/SIGINT.
    Also serves the web dashboard (on dashboard.host, 127.0.0.1) and prints its URL."""
    dashboard = (dashboard_port, no_dashboard)  # read with the config once the flags are in (_run_worker_process)
    _run_worker_process(app, concurrency=concurrency, with_scheduler=True, dashboard=dashboard,
                        metrics_flags=(metrics_port, metrics_host), log_level=log_level)


def register(cli: click.Group) -> None:
    for command in (worker, scheduler, serve):
        cli.add_command(command)
