"""Built-in plugin `sidecar`: the runtime-API sidecar of each execution.

Starts `cronium-runtime-<execution>` from the sidecar image, on the job network with the alias
`runtime-api` (port 8081 is not published) and on the services network, from which it reaches
Redis. It listens on its job-network address only (`listen_subnet`): nothing on the services
network — another sidecar, a job of another installation — reaches its port. Its settings — the
token's verify key and a Redis URL with a per-execution ACL user that may
read this execution's record and write only its results hash and its namespace's variables — go over the attached stdin, so
`docker inspect` shows neither. Readiness is event-driven: the sidecar prints one ready line when it
accepts connections, saying whether Redis answered; we read it from the attach stream.
Long-lived processes claim a pooled, already booted sidecar instead (`_sidecar_pool`): the claim
is recorded in the store (container id -> execution, owner, attempt) before the sidecar gets
anything of the execution. `reap_orphans` removes orphaned sidecar containers (a claimed pooled one
judged by its claim record), stale claim records and ACL users.
"""
from __future__ import annotations

import json
import secrets
import select
import time
from urllib.parse import quote, urlsplit, urlunsplit

from cronium.core import hookimpl
from cronium.core.engine_objects import Claims, labels_as_claimed
from cronium.core.errors import PhaseError, StoreUnavailable
from cronium.core.executor import check_engine_warnings
from cronium.core.model import SidecarInfo
from cronium.plugins import _docker
from cronium.plugins._sidecar_pool import SidecarPool, deadline_label, pool_key
from docker.errors import APIError

#: This plugin belongs to the Docker executor: it takes part only in runs with executor = "docker".
EXECUTOR = "docker"
ALIAS = "runtime-api"
#: Name prefix of an execution's sidecar (also of a pooled one once claimed).
NAME_PREFIX = "cronium-runtime-"
PORT = 8081
#: Redis commands the sidecar's per-execution ACL user may run (see sidecar/store.py), and those its
#: variable scripts call (sidecar/variable_script.py; ACL rules hold inside scripts too). No SELECT:
#: ACL key patterns hold in every database, so SELECT would open all of them.
SIDECAR_COMMANDS = ("ping", "hget", "hset", "eval", "hexists", "hdel", "hlen", "hkeys", "hstrlen", "hsetnx", "hincrby")


def acl_rules(keys, execution_id: str, namespace: str, password: str) -> list[str]:
    """Read-only on the record (`%R~`: the orchestrator's fields stay the orchestrator's); read-write on
    the execution's results hash and its namespace's variable hashes only (Redis >= 7)."""
    return ["reset", "on", f">{password}", f"%R~{keys.execution(execution_id)}",
            f"~{keys.sidecar_results(execution_id)}", *[f"~{k}" for k in keys.variable_hashes(namespace)],
            "resetchannels", "-@all", *[f"+{c}" for c in SIDECAR_COMMANDS]]


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def create_acl_user(runtime, execution, resources) -> str:
    """Create the execution attempt's Redis ACL user (keys it may touch: `acl_rules`), register
    its removal in `resources`, and return the Redis URL with its credentials for the sidecar.
    Raises PhaseError("sidecar") when Redis refuses it or the URL names a database other than 0.
    Used by this plugin, the swarm sidecar and pooled slots (`_slots`)."""
    store = runtime.store
    if urlsplit(runtime.sidecar_redis_url).path.strip("/") not in ("", "0"):
        raise PhaseError("sidecar", "redis.sidecar_url names a database other than 0; with redis.sidecar_auth = "
                                    "\"acl\" the sidecar may not SELECT (it would open every database)",
                         hint="use database 0 (a separate Redis, or a key_prefix, keeps installations apart)")
    user = store.keys.acl_user(execution.execution_id, execution.attempt_tag)
    password = secrets.token_urlsafe(24)
    try:
        store.acl.create(user, acl_rules(store.keys, execution.execution_id, execution.namespace, password))
    except Exception as exc:
        raise PhaseError("sidecar", f"could not create the sidecar's Redis ACL user: {exc}",
                         hint="use Redis >= 7 (read-only key patterns) with ACL rights for cronium, or set redis.sidecar_auth = \"shared\"") from None
    resources.add("redis-acl-user", user, lambda: store.acl.delete(user))
    return with_credentials(runtime.sidecar_redis_url, user, password)


def sidecar_settings(execution, token, redis_url: str, cfg, network) -> dict:
    return {
        "execution_id": execution.execution_id,
        "job_id": execution.job_id,
        "namespace": execution.namespace,
        "redis_url": redis_url,
        "key_prefix": cfg["redis.key_prefix"],
        "auth": {"algorithm": token.claims.algorithm, "key": token.verify_key.reveal()},
        "audience": token.claims.audience,
        "listen_subnet": network.subnet,
        "port": PORT,
        "rate_limit": {"per_minute": cfg["sidecar.rate_limit_per_minute"], "burst": cfg["sidecar.rate_limit_burst"]},
        "auth_failure_limit": {"per_minute": cfg["sidecar.auth_failures_per_minute"],
                               "burst": cfg["sidecar.auth_failures_burst"]},
        "max_body_bytes": cfg["sidecar.max_body_bytes"],
        "variables": {"max_value_bytes": cfg["variables.max_value_bytes"], "max_count": cfg["variables.max_count"],
                      "max_bytes": cfg["variables.max_bytes"]},
    }


def wait_ready(raw, timeout: float) -> tuple[bool, bytes]:
    """Read the sidecar's output until its ready line; returns (ready, output seen: ends with it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    frames = _docker.read_frames(raw)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([raw], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        for stream, data in frames:
            if data is None:
                break
            seen += data
            if ready_event(seen) is not None:
                return True, seen
        else:
            return False, seen  # end of stream: the sidecar exited
        if len(seen) > 65536:
            seen = seen[-65536:]
    return False, seen


@hookimpl(trylast=True)
def launch_sidecar(execution, network, token, options, runtime, resources):
    client, cfg = runtime.docker, runtime.config
    name = f"{NAME_PREFIX}{execution.execution_id}"
    if cfg["redis.sidecar_auth"] == "acl":
        redis_url = create_acl_user(runtime, execution, resources)
    else:
        redis_url = runtime.sidecar_redis_url
    settings = json.dumps(sidecar_settings(execution, token, redis_url, cfg, network)).encode()
    services_network = cfg["services.network"] if cfg.redis_managed or cfg["redis.sidecar_url"] else None
    image = cfg["images.sidecar"]
    host_kwargs = _docker.host_config_kwargs(options.host_config)

    if runtime.warm_pool and services_network and cfg["sidecar.pool_size"] > 0:
        info = _launch_warm(runtime, execution, name, network, settings, options, host_kwargs, services_network,
                            resources)
        if info is not None:
            return info

    # Registered before the create call (by name, removed only while it is this attempt's): see
    # the network plugin.
    labels = {**options.labels, **execution.labels, "cronium.role": "sidecar"}
    owned = _docker.Owned(client, "container", name, labels)
    resources.add("container", name, owned.remove)
    container_id = owned.created(create_sidecar_container(client, image, name, options, labels, host_kwargs,
                                                          network.name, [ALIAS]))
    if services_network:
        connect_sidecar(client, container_id, services_network, None)
    raw = _docker.attach(client, container_id)
    # Booting is CPU-bound: past a few at once, every sidecar on the machine gets slower. Queue the
    # boots instead (the ready timeout counts from this sidecar's own start).
    try:
        with runtime.gate("sidecar-boot", cfg["sidecar.max_booting"]):
            client.api.start(container_id)
            started = time.monotonic()
            _docker.send_and_close_stdin(raw, settings)
            ready, output = wait_ready(raw, cfg["sidecar.ready_timeout"])
    finally:
        _docker.close(raw)
    return ready_info(client, container_id, name, image, ready, output, started, cfg)


def create_sidecar_container(client, image, name, options, labels, host_kwargs, network_name, aliases) -> str:
    """Create (not start) a sidecar container `name` of `image` on `network_name` (with `aliases`,
    if any), stdin open for its settings, with the sidecar options' user and env; returns its id.
    Engine refusals become PhaseError("sidecar"). Used by this plugin and pooled slots (`_slots`)."""
    host_config = client.api.create_host_config(
        network_mode=network_name, log_config={"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
        **host_kwargs)
    networking = client.api.create_networking_config(
        {network_name: client.api.create_endpoint_config(aliases=aliases)}) if aliases else None
    try:
        created = client.api.create_container(image, name=name, user=options.user, stdin_open=True, labels=labels,
                                              host_config=host_config, networking_config=networking,
                                              environment=dict(options.env))
    except APIError as exc:
        raise _docker.create_error(exc, phase="sidecar", name=name, image=image, role="sidecar") from None
    check_engine_warnings(created.get("Warnings"), "sidecar")
    return created["Id"]


def connect_sidecar(client, container_id: str, network_name: str, aliases) -> None:
    """Attach a sidecar container to a second network (the services network, or the job's with
    the `runtime-api` alias); a refusal becomes PhaseError("sidecar") naming the network."""
    try:
        client.api.connect_container_to_network(container_id, network_name, aliases=aliases)
    except APIError as exc:
        raise PhaseError("sidecar", f"could not attach the sidecar to the network '{network_name}': "
                                    f"{exc.explanation or exc}",
                         hint="start the services with `cronium services start`") from None


def _launch_warm(runtime, execution, name, network, settings, options, host_kwargs, services_network,
                 resources) -> SidecarInfo | None:
    """Claim a pooled sidecar for this execution (None: none was idle, or the claim failed — boot
    one cold). Either way, the pool tops up for this job (`SidecarPool.refill_if_short`)."""
    client, cfg = runtime.docker, runtime.config
    image = cfg["images.sidecar"]
    pool = runtime.extension("sidecar-pool", lambda: SidecarPool.from_config(runtime))
    key = pool_key(image, options.user, options.host_config)

    def create_pooled(pool_name: str) -> str:
        # Neutral labels: a pool name as `cronium.execution`; the execution is bound at claim.
        labels = {"cronium.managed": "true", "cronium.owner": runtime.owner, "cronium.role": "sidecar",
                  "cronium.execution": pool_name, "cronium.deadline": deadline_label(runtime),
                  "cronium.installation": runtime.installation, "cronium.pool": key, **options.labels}
        cid = create_sidecar_container(client, image, pool_name, options, labels, host_kwargs, services_network,
                                       None)
        client.api.start(cid)
        return cid

    warm = pool.take(key)
    # Replacements start at this job's release if none of its kind is left idle or other jobs run,
    # else after its cleanup (job_started / cleanup): their boot competes with its start and run.
    pool.refill_later(execution.execution_id, key, create_pooled)
    if warm is None:
        return None
    claims = runtime.store.pool_claims
    # The claim record outlives the container (removed in reverse order) and is written before the
    # container gets anything of this execution: the reaper judges it as this execution's.
    resources.add("pool-claim", warm, lambda: claims.release(warm))
    resources.add("container", name, lambda: _docker.remove(client, "container", warm))
    try:
        claims.claim(warm, execution=execution.execution_id, owner=runtime.owner, attempt=execution.attempt_tag)
        return _claim(client, warm, name, network, settings, cfg)
    except (PhaseError, StoreUnavailable):
        # It died while waiting, could not be claimed, or the claim could not be recorded: remove
        # it now — it may already carry this execution's name — and boot a fresh one.
        _docker.remove(client, "container", warm, wait=10)
        return None


def _claim(client, container_id, name, network, settings, cfg) -> SidecarInfo:
    """Give a pooled, already booted sidecar to this execution."""
    started = time.monotonic()
    try:
        client.api.rename(container_id, name)
    except APIError as exc:
        raise PhaseError("sidecar", f"could not claim a pooled sidecar: {exc.explanation or exc}") from None
    connect_sidecar(client, container_id, network.name, [ALIAS])
    raw = _docker.attach(client, container_id)
    try:
        _docker.send_and_close_stdin(raw, settings)
        ready, output = wait_ready(raw, cfg["sidecar.ready_timeout"])
    finally:
        _docker.close(raw)
    return ready_info(client, container_id, name, cfg["images.sidecar"], ready, output, started, cfg)


def ready_info(client, container_id, name, image, ready, output, started, cfg) -> SidecarInfo:
    """The `SidecarInfo` of a sidecar that reported ready (`ready`, its `output` so far, `started`
    on the monotonic clock); PhaseError("sidecar") with its output's tail when it did not, or when
    its ready line says it cannot reach the store."""
    if not ready:
        tail = (output or _logs_tail(client, container_id)).decode("utf-8", "replace").strip()[-800:] or "(no output)"
        raise PhaseError("sidecar", f"the sidecar did not become ready within {cfg['sidecar.ready_timeout']}s; "
                                    f"its output: {tail}",
                         hint="check `cronium doctor`; rebuild the sidecar image with `cronium images build --force`")
    ready_seconds = time.monotonic() - started
    store = (ready_event(output) or {}).get("store")
    if store != "ok":
        raise PhaseError("sidecar", f"the sidecar cannot reach the store (Redis): its ready line says store={store!r}",
                         hint="check that Redis is up: `cronium services status`")
    # The sidecar listens on the job network only, which this host cannot reach: no probe URL.
    return SidecarInfo(container_id=container_id, name=name, image=image, alias=ALIAS,
                       url=f"http://{ALIAS}:{PORT}", probe_url=None, ready_seconds=ready_seconds)


def ready_event(output: bytes) -> dict | None:
    """The sidecar's ready line (`{"event": "ready", ...}`) in its output so far, decoded; None
    while there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith(b"{") and b'"ready"' in line:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "ready":
                return event
    return None


def _logs_tail(client, container_id: str) -> bytes:
    try:
        return client.api.logs(container_id, tail=20)
    except APIError:
        return b""


@hookimpl(trylast=True)
def job_finished(execution, result, runtime):
    """Record in the execution's record whether the sidecar outlived the job (if it died, the
    job's helper calls failed: the record says so)."""
    try:
        state = runtime.docker.api.inspect_container(f"{NAME_PREFIX}{execution.execution_id}")["State"]
    except APIError:
        return  # never started (setup failed earlier)
    if state.get("Running"):
        return
    detail = f"the sidecar exited during the job (exit code {state.get('ExitCode')}" + (
        ", killed for exceeding its memory limit" if state.get("OOMKilled") else "") + ")"
    runtime.store.records.update(execution.execution_id, {"sidecar_state": detail})


@hookimpl(trylast=True)
def job_started(execution, runtime):
    """This job's start-up is done: top up the warm pool now if none of its kind is left idle or
    other jobs run (else at its cleanup)."""
    pool = runtime.extension_if_present("sidecar-pool")
    if pool is not None:
        pool.refill_if_short(execution.execution_id)


@hookimpl(trylast=True)
def cleanup(execution, runtime):
    """Top up the pool this job took from (if its release did not: see `job_started`); a job that
    failed before it started does too."""
    pool = runtime.extension_if_present("sidecar-pool")
    if pool is not None:
        pool.refill_now(execution.execution_id)


@hookimpl(trylast=True)
def reap_orphans(judge, dry_run, report, runtime):
    """Orphaned sidecar containers (pooled ones too: a claimed one is judged as the execution its
    claim record names), stale claim records, and per-execution Redis ACL users."""
    client, store = runtime.docker, runtime.store
    try:
        claims = store.pool_claims.all()  # read before the listing: a claim not listed is stale
    except StoreUnavailable as exc:
        report.errors.append(f"pool claims: {exc}")
        claims = None
    found = [c for c in _docker.labelled(client, "container", "cronium.managed=true")
             if (c.get("Labels") or {}).get("cronium.role") == "sidecar" or "cronium.pool" in (c.get("Labels") or {})]
    if claims is None:  # cannot tell which execution a pooled one serves: keep them all this time
        report.kept += [f"container {c['Name']}" for c in found if "cronium.pool" in (c.get("Labels") or {})]
        found = [c for c in found if "cronium.pool" not in (c.get("Labels") or {})]
    _docker.reap(client, "container", found, judge, dry_run, report,
                 labels_of=lambda c: labels_as_claimed(c, Claims(sidecars=claims or {})))
    if claims and not dry_run:
        _drop_stale_claims(store, claims, {c["Id"]: c["Name"] for c in found}, report)
    if runtime.config["redis.sidecar_auth"] == "acl":
        _reap_acl_users(store, judge, dry_run, report)


def _drop_stale_claims(store, claims: dict[str, dict], listed: dict[str, str], report) -> None:
    """Claim records whose container is gone: removed by this sweep, or earlier by a process that
    died before it deleted the record. `listed`: id -> name of the containers this sweep saw."""
    removed = set(report.removed)
    gone = [cid for cid in claims if cid not in listed or f"container {listed[cid]}" in removed]
    try:
        store.pool_claims.release(*gone)
    except StoreUnavailable as exc:
        report.errors.append(f"pool claims: {exc}")


def _reap_acl_users(store, judge, dry_run, report) -> None:
    """ACL users carry no labels: each is judged by its execution's record (owner and deadline);
    one whose execution has no record in this installation's store is not ours and stays."""
    try:
        users = store.acl.names(store.keys.acl_user("exec_"))
    except Exception as exc:
        if "unknown" not in str(exc).lower():  # a Redis without ACL has no users to reap
            report.errors.append(f"redis acl users: {exc}")
        return
    for user in users:
        what = f"redis-acl-user {user}"
        if not judge.verdict_for(store.keys.acl_user_execution(user)):
            report.kept.append(what)
            continue
        if not dry_run:
            try:
                store.acl.delete(user)
            except Exception as exc:
                report.errors.append(f"{what}: {exc}")
                continue
        report.removed.append(what)
