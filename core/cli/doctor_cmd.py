"""`cronium doctor`: is everything cronium needs here, and if not, what to do."""
from __future__ import annotations

import json

import click

from .options import json_option


def run_checks(app) -> list[dict]:
    """Each check: name, ok, detail, fix. Stops checking what depends on a failed check."""
    checks: list[dict] = []

    def add(name, ok, detail, fix=None):
        checks.append({"check": name, "ok": ok, "detail": detail, "fix": None if ok else fix})
        return ok

    from cronium.core.errors import CroniumError

    try:
        cfg = app.config
        add("config", True, f"{len(cfg.settings())} keys loaded")
    except CroniumError as exc:
        add("config", False, exc.message, exc.hint)
        return checks

    try:
        from cronium.core.plugins import create_plugin_manager

        pm = create_plugin_manager(cfg["plugins.disabled"])
        enabled = [i.name for i in pm.plugin_infos() if i.enabled]
        add("plugins", True, f"{len(enabled)} enabled: {', '.join(enabled)}")
    except CroniumError as exc:
        add("plugins", False, exc.message, exc.hint)

    from cronium.core.runtime import connect_docker

    try:
        client = connect_docker(cfg)
    except CroniumError as exc:
        add("docker engine", False, exc.message, exc.hint)
        return checks
    info = client.info()
    version = client.version()
    add("docker engine", True, f"version {version.get('Version')} (API {version.get('ApiVersion')}), "
                               f"storage driver {info.get('Driver')}, cgroup v{info.get('CgroupVersion', '1')}")
    security = info.get("SecurityOptions") or []
    add("seccomp", any("seccomp" in s for s in security), ", ".join(security) or "none reported",
        "use a Docker engine built with seccomp support")
    add("limits", bool(info.get("MemoryLimit")) and bool(info.get("PidsLimit")),
        f"memory limit {'yes' if info.get('MemoryLimit') else 'no'}, pids limit {'yes' if info.get('PidsLimit') else 'no'}",
        "the kernel must have the memory and pids cgroup controllers enabled")

    for check in cluster_checks(client, cfg):
        add(*check)

    from cronium.core.host.images import image_status

    from .images_cmd import build_base, image_tags

    for s in image_status(client, image_tags(cfg), base=build_base(cfg, None)):
        add(f"image {s.name}", s.present and s.up_to_date,
            f"{s.tag} " + ("up to date" if s.up_to_date else (s.detail or "outdated")),
            "run `cronium images build`")

    try:
        store = app.runtime(read_only=True).store
        server = store.server_info()
        add("redis", True, f"{'managed' if cfg.redis_managed else 'external'}, version {server.get('redis_version')}")
        add("redis memory", *memory_check(cfg, store.memory_limits()))
    except CroniumError as exc:
        add("redis", False, exc.message, exc.hint)
        return checks
    if cfg.redis_managed and not cfg["redis.sidecar_url"]:
        add("sidecar path", *sidecar_path_check(client, cfg))
    return checks


def cluster_checks(client, cfg) -> list[tuple[str, bool, str, str]]:
    """(name, ok, detail, fix) for the engine's swarm role and nodes, and the image registry when
    `images.registry` is set (read-only)."""
    from cronium.core.host.images import registry_reachable
    from cronium.core.host.swarm import swarm_check, swarm_summary

    checks = [("swarm", *swarm_check(swarm_summary(client), needed=cfg.get("executor") == "swarm"))]
    registry = cfg["images.registry"]
    if registry:
        reach = registry_reachable(registry)
        checks.append(("image registry", reach.ok, reach.detail,
                       f"start the registry at {registry} (docs/swarm-setup.md), or fix images.registry"))
    return checks


def sidecar_path_check(client, cfg) -> tuple[bool, str, str]:
    """(ok, detail, fix): a new container on the services network resolves and reaches the managed
    Redis by name, as sidecars do (read-only: the probe container is removed, nothing is healed)."""
    from cronium.core.host import services

    name, network = cfg["services.redis_container"], cfg["services.network"]
    probe = services.probe_sidecar_path(client, image=cfg["images.redis"], name=name, network=network)
    return probe.ok, probe.detail, services.heal_hint(name, network)


def memory_check(cfg, limits: dict) -> tuple[bool, str, str]:
    """(ok, detail, fix) for the server's maxmemory and policy: the managed Redis must hold
    `services.redis_maxmemory` with noeviction; any server must not evict (it would drop records,
    queue entries and variables without a word)."""
    from cronium.core.config import parse_size

    limit, policy, used = limits.get("maxmemory"), limits.get("maxmemory_policy"), limits.get("used_memory")
    if limit is None:
        return True, f"unknown (the server refuses CONFIG GET), {used} bytes used", ""
    detail = f"maxmemory {limit or 'none'} bytes, policy {policy}, {used} bytes used"
    if policy != "noeviction":
        return False, detail, ("set maxmemory-policy noeviction on the server: with eviction, Redis drops records, "
                               "queue entries and variables silently")
    if cfg.redis_managed and limit != parse_size(cfg["services.redis_maxmemory"]):
        return False, detail + f"; services.redis_maxmemory is {cfg['services.redis_maxmemory']}", (
            "re-create the managed Redis with the configured limit (the data volume is kept): "
            "`cronium services stop` then `cronium services start`")
    return True, detail, ""


@click.command()
@json_option()
@click.pass_obj
def doctor(app, as_json):
    """Check the Docker engine, the images, Redis and the config; print a fix for each problem."""
    checks = run_checks(app)
    if as_json:
        click.echo(json.dumps(checks, indent=2))
    else:
        for c in checks:
            mark = "ok  " if c["ok"] else "FAIL"
            click.echo(f"{mark} {c['check']:16} {c['detail']}")
            if not c["ok"] and c["fix"]:
                click.echo(f"     {'':16} fix: {c['fix']}")
    if not all(c["ok"] for c in checks):
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(doctor)
