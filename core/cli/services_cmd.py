"""`cronium services`: the managed Redis that cronium starts when no redis.url is configured."""
from __future__ import annotations

import json

import click
from cronium.core.errors import UsageError

from .display import human_value
from .options import json_option


def _args(cfg) -> dict:
    from cronium.core.config import state_dir

    return dict(image=cfg["images.redis"], name=cfg["services.redis_container"], network=cfg["services.network"],
                volume=cfg["services.redis_volume"], port=cfg["services.redis_port"], state_dir=state_dir(),
                maxmemory=cfg["services.redis_maxmemory"])


def _client(app):
    from cronium.core.runtime import connect_docker

    return connect_docker(app.config)


@click.group("services")
def services_group():
    """Manage the services cronium runs for itself (the managed Redis)."""


@services_group.command("status")
@json_option()
@click.pass_obj
def status(app, as_json):
    """Show whether the managed Redis runs (or which external Redis is configured)."""
    from cronium.core.config import mask_url
    from cronium.core.host import services

    cfg = app.config
    if not cfg.redis_managed:
        info = {"redis": "external", "url": mask_url(cfg["redis.url"])}
    else:
        from dataclasses import asdict

        status = services.redis_status(_client(app), name=cfg["services.redis_container"], state_dir=_args(cfg)["state_dir"])
        info = asdict(status)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        for key, value in info.items():
            click.echo(f"{key:12} {human_value(value)}")


@services_group.command("start")
@click.pass_obj
def start(app):
    """Start the managed Redis (idempotent) and heal the sidecars' path to it.

    The path is probed from a new container on the services network, by name; when the engine's
    DNS lost the name, the Redis container is reconnected to that network and probed again."""
    from cronium.core.config import mask_url
    from cronium.core.host import services

    cfg = app.config
    if not cfg.redis_managed:
        raise UsageError(f"redis.url is set ({mask_url(cfg['redis.url'])}): cronium does not manage that server")
    client = _client(app)
    redis = services.ensure_redis(client, **_args(cfg))
    click.echo(f"redis {redis.action}: {redis.name} on {redis.host}:{redis.port} (sidecars: {redis.network_host}:{redis.network_port} on {redis.network})")
    path = services.ensure_sidecar_path(client, cfg, progress=lambda _name, message: click.echo(message, err=True))
    if path is not None:
        click.echo(f"sidecar path ok: {path.detail}")


@services_group.command("stop")
@click.pass_obj
def stop(app):
    """Stop the managed Redis (its data volume is kept)."""
    from cronium.core.host import services

    cfg = app.config
    if not cfg.redis_managed:
        raise UsageError("redis.url is set: cronium does not manage that server")
    stopped = services.stop_redis(_client(app), name=cfg["services.redis_container"])
    click.echo("redis stopped" if stopped else "redis was not running")


def register(cli: click.Group) -> None:
    cli.add_command(services_group)
