"""A private registry for cronium's images, so that every node of a swarm can pull them.

`images.registry = "host:port"`: each image tag `cronium/python:latest` is known in the registry as
`host:port/cronium/python:latest` (`registry_tag`). `push_images` tags the local images so and
pushes them through the engine; `registry_reachable` says whether this host reaches the registry's
`/v2/` endpoint (HTTP or HTTPS), for `cronium doctor` and for a clear error before a push.
"""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from ...errors import CroniumError
from .engine import Progress, get_image

#: Images the nodes of a swarm run (the base is only built upon).
PUSHED_IMAGES = ("python", "bash", "node", "sidecar", "redis")


class RegistryError(CroniumError):
    """The registry could not be reached, or a push failed."""


def registry_tag(tag: str, registry: str) -> str:
    """The name of the image `tag` in `registry` (`tag` unchanged when `registry` is empty)."""
    if not registry:
        return tag
    return f"{registry}/{tag.split('/', 1)[1]}" if _has_registry(tag) else f"{registry}/{tag}"


def _has_registry(tag: str) -> bool:
    first, slash, _ = tag.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


@dataclass(frozen=True)
class Reachability:
    ok: bool
    detail: str


def registry_reachable(registry: str, *, timeout: float = 3.0) -> Reachability:
    """Whether `https://<registry>/v2/` or else `http://<registry>/v2/` answers as a registry does
    (200, or 401 when it asks for credentials). Certificates are not checked here: the engine
    checks them when it pulls or pushes."""
    errors = []
    for scheme in ("https", "http"):
        url = f"{scheme}://{registry}/v2/"
        context = ssl._create_unverified_context() if scheme == "https" else None  # noqa: S323 - reachability only
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
                return Reachability(True, f"{registry} answers over {scheme} (HTTP {resp.status})")
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return Reachability(True, f"{registry} answers over {scheme} (asks for credentials)")
            errors.append(f"{scheme}: HTTP {exc.code}")
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            errors.append(f"{scheme}: {reason}")
    return Reachability(False, f"{registry} does not answer as a registry ({'; '.join(errors)})")


def push_images(client, tags: dict[str, str], registry: str, *, names=None,
                progress: Progress | None = None) -> list[str]:
    """Tag each local image (`tags`: name -> local tag; `names`: a subset of `PUSHED_IMAGES`) as
    `registry_tag(...)` and push it; returns the pushed names. `RegistryError` naming the registry
    and the fix when it is unreachable or refuses a push; `CroniumError` for a missing image."""
    if not registry:
        raise RegistryError("images.registry is not set: there is no registry to push to",
                            hint='set it, e.g. `CRONIUM_IMAGES_REGISTRY=registry.lan:5000` or '
                                 '[images] registry = "registry.lan:5000" in cronium.toml')
    wanted = list(names or PUSHED_IMAGES)
    unknown = [n for n in wanted if n not in PUSHED_IMAGES]
    if unknown:
        raise RegistryError(f"unknown image name(s): {', '.join(unknown)}", hint=f"choose from {', '.join(PUSHED_IMAGES)}")
    reach = registry_reachable(registry)
    if not reach.ok:
        raise RegistryError(f"cannot push: {reach.detail}",
                            hint=f"start the registry, or fix images.registry ({registry!r})")
    pushed = []
    for name in wanted:
        local = tags[name]
        image = get_image(client, local)
        if image is None:
            raise CroniumError(f"the image {local} is missing here", hint=f"run `cronium images build {name}`")
        target = registry_tag(local, registry)
        repository, tag = _split(target)
        image.tag(repository, tag)
        if progress:
            progress(name, f"pushing {target}")
        _push(client, repository, tag, target, registry)
        pushed.append(target)
    return pushed


def _split(ref: str) -> tuple[str, str]:
    """("host:5000/cronium/python", "latest") for "host:5000/cronium/python:latest"."""
    head, _, last = ref.rpartition("/")
    name, _, tag = last.partition(":")
    return (f"{head}/{name}" if head else name), (tag or "latest")


def _push(client, repository: str, tag: str, target: str, registry: str) -> None:
    import docker.errors

    try:
        for event in client.api.push(repository, tag=tag, stream=True, decode=True):
            error = event.get("error") or (event.get("errorDetail") or {}).get("message")
            if error:
                raise RegistryError(f"pushing {target} failed: {error}", hint=_push_hint(error, registry))
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        raise RegistryError(f"pushing {target} failed: {text}", hint=_push_hint(text, registry)) from None
    except ValueError as exc:  # a stream line that is not JSON
        raise RegistryError(f"pushing {target} failed: the engine answered {json.dumps(str(exc))}") from None


def _push_hint(error: str, registry: str) -> str:
    if "HTTP response to HTTPS client" in error or "certificate" in error:
        return (f"the engine trusts only HTTPS registries (and 127.0.0.0/8): serve {registry} with TLS and put its "
                f"CA in /etc/docker/certs.d/{registry}/ca.crt, or list it in the engine's insecure-registries")
    return f"check that {registry} accepts pushes from this engine (`docker push` by hand shows the same)"
