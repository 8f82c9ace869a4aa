"""Built-in plugin `slots`: pooled slots for long-lived processes (`pool.slots`).

Answers `claim_slot` with a network, a booted sidecar and a started job container made ahead of
time (`_slots`), bound to the execution at claim — instead of creating them on its critical path.
It answers only when slots cannot change what the job gets:

- the built-in `network`, `sidecar` and `docker_executor` plugins are the only ones implementing
  `create_network`, `launch_sidecar` and `start_job` for the Docker executor: any other plugin
  that implements (or wraps) one of them switches slots off, so that it is never bypassed;
- the spec is one a held container can take (`_slots.refusal`: a script job of any image and
  profile — both are in the slot's kind — with no egress, no per-execution uid, no mounts), and
  the engine holds its image (else the normal path gives its clear error; no slot is asked for);
- the process keeps warm pools (`Runtime(warm_pool=True)`), on a services network.

A job that asks and finds no idle slot of its kind takes the normal path. The pool tops up at the
job's release when no idle slot of its kind is left or other jobs run, else after the job's cleanup
(as the sidecar pool does: `SidecarPool.refill_if_short`). `reap_orphans` removes slot objects whose owner (or,
once claimed, whose execution) is gone, and claim records of slots that no longer exist.
"""
from __future__ import annotations

import logging

from cronium.core import hookimpl
from cronium.core.engine_objects import Claims, labels_as_claimed
from cronium.core.errors import StoreUnavailable
from cronium.core.model import Slot
from cronium.plugins import _docker, _slots, docker_executor, network, sidecar

#: This plugin belongs to the Docker executor: it takes part only in runs with executor = "docker".
EXECUTOR = "docker"
#: The hooks a slot stands in for, and the built-in plugin that must be their only implementation.
REPLACED = {"create_network": network, "launch_sidecar": sidecar, "start_job": docker_executor}
POOL = "slot-pool"
log = logging.getLogger("cronium.slots")


def builtins_only(pm) -> bool:
    """True when no plugin other than the built-ins implements (or wraps) a hook a slot stands
    in for. Plugins of another executor do not count: they never take part in a Docker run."""
    for hook, builtin in REPLACED.items():
        for impl in getattr(pm.hook, hook).get_hookimpls():
            executor = getattr(impl.plugin, "EXECUTOR", None)
            if impl.plugin is builtin or (isinstance(executor, str) and executor != EXECUTOR):
                continue
            return False
    return True


def _services_network(cfg) -> str | None:
    return cfg["services.network"] if cfg.redis_managed or cfg["redis.sidecar_url"] else None


@hookimpl(trylast=True)
def claim_slot(execution, token, sidecar_options, launch, runtime, resources):
    cfg = runtime.config
    services = _services_network(cfg)
    if not (runtime.warm_pool and cfg["pool.slots"] and services and cfg["sidecar.pool_size"] > 0):
        return None
    why = _slots.refusal(execution, launch, cfg) or (None if builtins_only(runtime.pm) else
                                                     "a plugin replaces the network, sidecar or executor")
    image = _slots.image_id(runtime.docker, launch.image) if why is None else None
    if image is None:
        log.debug("%s takes no slot: %s", execution.execution_id, why or f"image {launch.image} not on the engine")
        return None
    kind = _slots.slot_kind(launch, image, sidecar_options, services)
    pool = runtime.extension(POOL, lambda: _slots.open_pool(runtime))
    slot = pool.take(kind.key)
    # Replacements start at this job's release if none is left idle or other jobs run, else after
    # its cleanup (job_started / cleanup): a slot's boot competes with the job's run for the CPU.
    pool.refill_later(execution.execution_id, kind.key, lambda name: _slots.create_slot(runtime, name, kind))
    if slot is None:
        log.debug("%s finds no idle slot of kind %s", execution.execution_id, kind.key)
        return None
    bound = _slots.claim(runtime, slot, execution, token, launch, resources)
    return Slot(*bound) if bound is not None else None


@hookimpl(trylast=True)
def job_started(execution, runtime):
    """This job's start-up is done: top up the slot pool now if no idle slot of its kind is left
    or other jobs run (else at its cleanup)."""
    pool = runtime.extension_if_present(POOL)
    if pool is not None:
        pool.refill_if_short(execution.execution_id)


@hookimpl(trylast=True)
def cleanup(execution, runtime):
    """Top up the pool this job asked (if its release did not); a job that failed before it
    started does too."""
    pool = runtime.extension_if_present(POOL)
    if pool is not None:
        pool.refill_now(execution.execution_id)


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Slot containers and networks: an idle one judged by its labels (this process's owner), a
    claimed one as the execution its claim record names; then claim records of vanished slots."""
    client, store = runtime.docker, runtime.store
    try:
        claims = store.pool_claims.all("slot")  # read before the listing: a claim not listed is stale
    except StoreUnavailable as exc:
        report.errors.append(f"slot claims: {exc}")
        return  # cannot tell which execution a claimed slot serves: keep them all this time
    containers = _docker.labelled(client, "container", "cronium.managed=true", f"cronium.role={_slots.ROLE}")
    networks = _docker.labelled(client, "network", "cronium.managed=true", f"cronium.role={_slots.ROLE}")

    def labels_of(item: dict) -> dict:
        return labels_as_claimed(item, Claims(slots=claims))

    _docker.reap(client, "container", containers, judge, dry_run, report, labels_of=labels_of)
    _docker.reap(client, "network", networks, judge, dry_run, report, labels_of=labels_of,
                 remove_one=lambda n: (_docker.detach_all(client.api, n["Id"]),
                                       _docker.remove(client, "network", n["Id"], wait=0)))
    if claims and not dry_run:
        alive = {n["Name"] for n in networks if f"network {n['Name']}" not in report.removed}
        alive |= {(c.get("Labels") or {}).get("cronium.execution") for c in containers
                  if f"container {c['Name']}" not in report.removed}
        try:
            store.pool_claims.release(*[name for name in claims if name not in alive])
        except StoreUnavailable as exc:
            report.errors.append(f"slot claims: {exc}")
