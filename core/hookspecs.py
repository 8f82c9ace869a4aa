"""Every hook of cronium's job lifecycle, in the order they fire.

Two kinds of hooks:

- **Providers** supply something the lifecycle needs. `firstresult` providers take the first
  non-None result (a plugin declines by returning None); the built-in implementations are marked
  `trylast=True`, so an installed plugin that answers wins. Contribution providers
  (`container_options`, `log_sinks`) are called on every plugin and the core merges the results.
  A provider that no plugin answers is a `MissingProvider` error naming the hook.
- **Notifications** tell every plugin what happened. The core calls every implementation even if
  one raises, and reports all failures together, naming the plugins (see `core/plugins.py`).
  Notifications return nothing.
- **Reaping** (`reap_orphans`, last) is dispatched like a notification but outside any execution:
  every plugin finds and removes its own orphans; the core only judges what is orphaned.

Arguments are always passed by keyword; a hook's arguments may grow but are never renamed. Payloads
are frozen dataclasses from `cronium.core.model`. No hook ever receives the execution token or a
secret env value in clear: the token reaches only the providers that must hand it on, wrapped in
`Secret`; `token_issued` receives the claims only.

Shared arguments:

- `execution` (`ExecutionInfo`): ids, job, namespace, image, profile, effective resources,
  deadline and the labels every Docker object of this execution must carry.
- `runtime` (`Runtime`): the services of the orchestrating process — `runtime.config` (`Config`),
  `runtime.docker` (a docker SDK `DockerClient`), `runtime.store` (`Store`, Redis access),
  `runtime.owner` (this process's owner id), `runtime.pm` (the plugin manager).
- `resources` (`ResourceRegistry`): call `resources.add(kind, name, remove)` the moment a resource
  exists; the core removes everything registered in reverse order on every path, and one failing
  removal never prevents the others.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("cronium")


# --- process start -------------------------------------------------------------------------------

@hookspec
def startup(runtime):
    """Notification: the orchestrating process (a `cronium run`, a worker, the scheduler) has loaded
    its plugins and configuration and is about to run jobs. Fires once per process.

    :param runtime: the process's services.
    """


@hookspec
def register_commands(cli):
    """Provider (contribution): add Click commands to the `cronium` CLI.

    Called once when the CLI starts. Implementations call `cli.add_command(...)`. Return value
    ignored.

    :param cli: the top-level `click.Group`.
    """


# --- 1. token ------------------------------------------------------------------------------------

@hookspec(firstresult=True)
def issue_token(execution, runtime):
    """Provider (firstresult): mint the execution token.

    Called first in the lifecycle, before any Docker object exists. The built-in `token` plugin
    signs a JWT with a fresh Ed25519 key per execution (or HS256 with the configured secret).

    :param execution: the execution the token is scoped to.
    :param runtime: the process's services.
    :return: an `IssuedToken` (token and verify key as `Secret`, plus the claims), or None to
        decline.
    """


@hookspec
def token_issued(execution, claims):
    """Notification: the execution token was minted.

    :param execution: the execution.
    :param claims: `TokenClaims` — the claims only; the token never reaches this hook.
    """


# --- 1b. a pooled slot (long-lived processes) ----------------------------------------------------

@hookspec(firstresult=True)
def claim_slot(execution, token, sidecar_options, launch, runtime, resources):
    """Provider (firstresult, optional): give the execution a pooled *slot* — a network, a booted
    sidecar on it and a started job container waiting for its secrets and script — instead of
    creating them one by one.

    Asked once the token exists, before `create_network`, and only in long-lived processes
    (`Runtime(warm_pool=True)`). When a plugin answers, `create_network`, `launch_sidecar` and
    `start_job` are not called for this execution; `network_created` and `sidecar_started` fire as
    usual, the core calls `handle.start()` (the container is already running: nothing happens) and
    later `handle.release()`, which delivers the job's environment, secrets and script. When no
    plugin answers, the execution takes the normal path. The built-in `slots` plugin answers only
    while the built-in `network`, `sidecar` and `docker_executor` plugins are the only ones
    implementing `create_network`, `launch_sidecar` and `start_job` (a plugin replacing or wrapping
    one of them switches slots off), with `pool.slots` on, and only for a spec a held container can
    take; it records the claim (`store.pool_claims`) before binding anything of the execution,
    registers every object in `resources`, and sets the job's limits by updating the container.

    :param token: `IssuedToken`; a slot's sidecar needs `token.verify_key` only.
    :param sidecar_options: merged `ContainerOptions` for role "sidecar".
    :param launch: `JobLaunch` of the job (image, command, env, secret env, merged options,
        script); a slot must deliver `env` and `secret_env` over stdin, never in the container's
        configuration.
    :return: a `Slot` (network, sidecar, handle), or None to decline (the normal path).
    """


# --- 2. network ----------------------------------------------------------------------------------

@hookspec(firstresult=True)
def create_network(execution, runtime, resources):
    """Provider (firstresult): create the execution's private network.

    The built-in `network` plugin creates a bridge network `cronium-net-<execution>`, internal (no
    egress) unless the job may have egress, on a small subnet from `network.pool`, labelled with
    `execution.labels`. It registers the network's removal in `resources`.

    :return: a `NetworkInfo`, or None to decline.
    """


@hookspec
def network_created(execution, network):
    """Notification: the execution's network exists.

    :param network: `NetworkInfo` (name, id, subnet, internal).
    """


# --- 3. container options (security profile and any plugin adding env/labels) --------------------

@hookspec
def container_options(execution, role, runtime):
    """Provider (contribution): options for one of the execution's containers.

    Called for `role="sidecar"` and for `role="job"` before each container is created. Every
    plugin may contribute; the core merges the contributions in call order (later HostConfig keys
    override earlier ones, list keys are concatenated, env and labels are merged). The built-in
    `security` plugin contributes the security profile (non-root user, read-only root, tmpfs,
    cap-drop ALL, no-new-privileges, memory/swap/CPU/pids limits, seccomp) and lists the settings it
    guarantees in `ContainerOptions.applied`; the core refuses to start a container when a required
    setting is missing from the merged result.

    :param role: "sidecar" or "job".
    :return: a `ContainerOptions`, or None.
    """


# --- 4. sidecar ----------------------------------------------------------------------------------

@hookspec(firstresult=True)
def launch_sidecar(execution, network, token, options, runtime, resources):
    """Provider (firstresult): start the runtime-API sidecar and return once it is ready.

    The built-in `sidecar` plugin starts `cronium-runtime-<execution>` from the sidecar image on
    the job network with alias `runtime-api` (port 8081 not published), also attached to the
    services network so it can reach Redis (it listens on its job-network address only), hands it
    its settings over stdin and waits for its ready line, which says whether Redis answered. It
    registers the container's removal (and any per-execution Redis credential) in `resources`.

    :param network: `NetworkInfo` of the job network.
    :param token: `IssuedToken`; the sidecar needs `token.verify_key` only.
    :param options: merged `ContainerOptions` for role "sidecar".
    :return: a `SidecarInfo`, or None to decline.
    """


@hookspec
def sidecar_started(execution, sidecar):
    """Notification: the sidecar is up and answered its health check.

    :param sidecar: `SidecarInfo` (container id, name, alias, url, seconds to ready).
    """


# --- 5. logs -------------------------------------------------------------------------------------

@hookspec
def log_sinks(execution, runtime):
    """Provider (contribution): where the job's output goes.

    Called once per execution before the job starts. The built-in `logs` plugin returns the
    terminal sink (when the runtime has a console), the Redis stream sink and the file sink.
    A sink has `name`, `write(batches)` (a sequence of `cronium.core.logs.LogBatch`es, in order;
    `batch.raw()` is the exact bytes, `batch.records()` the `LogRecord`s) and `close(ok)`.
    A sink that raises is dropped for the rest of the job and the failure is reported; the other
    sinks keep receiving every record.

    :return: a sink, a list of sinks, or None.
    """


# --- 6. job --------------------------------------------------------------------------------------

@hookspec(firstresult=True)
def start_job(execution, network, launch, runtime, resources):
    """Provider (firstresult): the executor. Create the job, attached to its output but not
    started, and return a handle the core drives.

    Called once the network exists, while the sidecar is still booting (`launch_sidecar` runs on
    another thread at the same time). Right after this hook returns, still while the sidecar boots,
    the core calls `handle.start()`: the job's container starts and waits for its secrets and
    script, running none of the job's code. Once `sidecar_started` has fired and the log reader
    reads `handle.chunks()`, the core calls `handle.release()`: the secret env and the script are
    delivered and the job's code — and its timeout — start. Then `handle.stop(grace)` on timeout or
    cancel, and `handle.exit_status()` once the output has ended. The built-in `docker_executor`
    plugin creates `cronium-job-<execution>` on the job network only, attaches to
    stdin/stdout/stderr before it starts (so no output can be missed), and on release writes the
    secret env block and the script to its stdin; the prelude that reads them is the container's
    entrypoint (an image's own `ENTRYPOINT` runs after it, for container jobs only, and never sees
    the secrets), and an init is PID 1 so that SIGTERM reaches the job. An executor for another engine (Swarm,
    Kubernetes) implements this hook (and `create_network`/`launch_sidecar`, and `reap_orphans`
    for what it creates) in a plugin; `cronium.core.testing.ExecutorConformance` is its test suite.

    :param network: `NetworkInfo` of the job network (the only network the job joins).
    :param launch: `JobLaunch` (image, command, env, secret env incl. the token as `Secret`s,
        merged options, script bytes, container name).
    :return: a `JobHandle` (see `cronium.core.executor`), or None to decline.
    """


@hookspec
def job_started(execution, container_id, runtime):
    """Notification: the job container is running; its timeout starts now.

    :param container_id: the engine's id of the job container.
    """


# --- 7. finish and cleanup -----------------------------------------------------------------------

@hookspec
def job_finished(execution, result, runtime):
    """Notification: the execution has its final status (before cleanup starts). The record in
    Redis is final too; a plugin may add fields to it (e.g. the sidecar's state) through
    `runtime.store.update_execution`.

    :param result: `JobResult` (status, exit code, timings, output value, condition, error).
    """


@hookspec
def cleanup(execution, result, runtime):
    """Notification: every registered resource of the execution has been removed (or its removal
    failed and was reported). Plugins drop per-execution state they kept. Always fires, on every
    path, including setup errors halfway.

    :param result: the final `JobResult` (status "error" when setup failed).
    """


# --- 8. reaping: what no cleanup reached ---------------------------------------------------------

@hookspec
def reap_orphans(judge, dry_run, report, runtime):
    """Notification (reaping): find the resources this plugin creates that a crashed or cut-off
    orchestrator left behind, and remove the orphaned ones. Each plugin reaps only its own kinds
    (the built-ins: job containers and volumes by `docker_executor`, sidecar containers incl.
    pooled ones and Redis ACL users by `sidecar`, networks and egress firewall rules by
    `network`, per-execution uid claims by `security`); the core never lists or removes anything
    itself.

    Called outside any execution: by `cronium gc`, by the background reaper every process starts
    (`gc.on_start`), every `worker.reap_interval` seconds in a worker, and — with a judgement that
    selects one execution — by a worker before it runs an execution again whose owner died. Every
    implementation is called even if one raises (the failure becomes an error of the sweep), in
    pluggy's order — no order between plugins is promised: a plugin whose resource others depend on
    copes with them still being there (the built-in `network` plugin detaches the containers still
    attached to an orphaned network before removing it).

    :param judge: the core's decision (`cronium.core.owners.Judgement`). Ask it about every
        resource you find, as late as possible — right before removing it: `judge.verdict(labels)`
        for a resource that carries the execution's labels, `judge.verdict_for(execution_id)` for
        one that carries none (judged by the execution's record). A verdict is true when the
        resource is orphaned (its owner died, or its deadline passed, or it belongs to the one
        execution the judgement selects); `verdict.reason` says why. A sweep never condemns the
        sweeping process's own resources nor another installation's.
    :param dry_run: True: remove nothing; report what would be removed.
    :param report: the sweep's `cronium.core.reaper.ReapReport`. Append `"<kind> <name>"` to
        `report.removed` for each resource removed (or, in a dry run, that would be), to
        `report.kept` for each one whose verdict is false, and `"<kind> <name>: <error>"` to
        `report.errors` for each removal that failed (then carry on with the next one).
    :return: ignored; everything goes into `report`.
    """
