"""`cronium images`: build and list the locally built images; push them to a private registry
(`images.registry`) for the nodes of a swarm. Nothing is ever pulled."""
from __future__ import annotations

import json
import time

import click

from .options import json_option, quiet_option


def image_tags(cfg) -> dict[str, str]:
    from cronium.core.host.images import IMAGE_NAMES

    return {name: cfg[f"images.{name}"] for name in IMAGE_NAMES}


def build_base(cfg, base_option: str | None) -> str | None:
    """The `images.build_base` setting (debootstrap, registry or an image), --base first."""
    return base_option or cfg["images.build_base"] or None


@click.group("images")
def images_group():
    """Build, list and push cronium's images (base, python, bash, node, sidecar, redis)."""


@images_group.command("build")
@click.argument("names", nargs=-1)
@click.option("--base", metavar="debootstrap|registry|IMAGE",
              help="Where the base comes from (default: images.build_base): a local Debian bootstrap, the "
                   "official Debian/Python/Node images when a registry is reachable (else the bootstrap), or IMAGE.")
@click.option("--force", is_flag=True, help="Rebuild even when the inputs did not change.")
@quiet_option("No progress lines.")
@click.pass_obj
def build(app, names, base, force, quiet):
    """Build the images that are missing or whose inputs changed (all by default, or NAMES).

    Each image carries a hash of its inputs; an image whose inputs did not change is not rebuilt.
    """
    from cronium.core.host.images import build_images, resolve_base
    from cronium.core.runtime import connect_docker

    cfg = app.config
    client = connect_docker(cfg)
    started = time.monotonic()

    def progress(name: str, message: str) -> None:
        if not quiet:
            click.echo(f"[{time.monotonic() - started:6.1f}s] {name}: {message}", err=True)

    choice = resolve_base(client, build_base(cfg, base), progress)
    if choice.note:
        click.echo(f"warning: {choice.note}", err=True)
    results = build_images(client, tags=image_tags(cfg), names=names or None, base=choice,
                           force=force, progress=progress)
    for r in results:
        click.echo(f"{r.name:8} {r.tag:28} {r.action:10} {r.seconds:6.1f}s  {r.image_id[7:19]}")


@images_group.command("list")
@json_option()
@click.pass_obj
def list_(app, as_json):
    """Show each image: present, up to date with its inputs, size."""
    from cronium.core.host.images import image_status
    from cronium.core.runtime import connect_docker

    cfg = app.config
    statuses = image_status(connect_docker(cfg), image_tags(cfg), base=build_base(cfg, None))
    if as_json:
        click.echo(json.dumps([s.__dict__ for s in statuses], indent=2))
        return
    for s in statuses:
        state = "up-to-date" if s.up_to_date else (s.detail or "outdated")
        size = f"{s.size / 1e6:7.1f} MB" if s.size else "       -"
        click.echo(f"{s.name:8} {s.tag:28} {state:16} {size}")


@images_group.command("push")
@click.argument("names", nargs=-1)
@click.option("--registry", metavar="HOST:PORT", help="Push here instead of images.registry.")
@quiet_option("No progress lines.")
@click.pass_obj
def push(app, names, registry, quiet):
    """Tag the images (all but base, or NAMES) as <registry>/<name> and push them to images.registry.

    The nodes of a swarm pull them from there; the local images stay as they are."""
    from cronium.core.host.images import push_images
    from cronium.core.runtime import connect_docker
    from cronium.core.values import VALIDATORS

    cfg = app.config
    target = registry if registry is not None else cfg["images.registry"]
    try:
        target = VALIDATORS["images.registry"](target)
    except ValueError as exc:
        raise click.BadParameter(f"{target!r} is not {exc}", param_hint="--registry") from None

    def progress(name: str, message: str) -> None:
        if not quiet:
            click.echo(f"{name}: {message}", err=True)

    for ref in push_images(connect_docker(cfg), image_tags(cfg), target, names=names or None, progress=progress):
        click.echo(f"pushed {ref}")


def register(cli: click.Group) -> None:
    cli.add_command(images_group)
