"""The managed Redis ("embedded default"): one Redis container cronium starts when no external Redis
is configured.

- container ``cronium-redis`` (name configurable) from the local ``cronium/redis`` image, labelled
  ``cronium.service=redis`` (never ``cronium.managed``: the reaper must not delete it);
- data in a named volume (``cronium-redis-data``) at ``/data`` with AOF persistence;
- ``requirepass`` with a password generated once and kept 0600 in the caller's state dir; the
  password reaches the container as a config file copied in before the first start, so it is in no
  command line, environment variable or ``docker inspect`` output;
- published only on ``127.0.0.1:<port>`` (default 6390) for the orchestrator on the host;
- attached to the internal network ``cronium-services`` so that sidecars on that network reach it as
  ``redis://cronium-redis:6379`` while that network has no route out;
- restart policy ``unless-stopped``;
- ``maxmemory`` (``services.redis_maxmemory``, default 256mb) with ``maxmemory-policy noeviction``:
  a full Redis refuses writes (cronium raises ``StoreFull``) instead of evicting records or queue
  entries. Set when the container is created; a stopped container whose limit differs is
  re-created, a running one is kept (``cronium doctor`` reports the mismatch).

Only objects carrying cronium's service labels are ever started, stopped or removed here.

The sidecars reach it by name through the engine's DNS, which Docker 20.10 can lose (after a swarm
init + leave): ``path`` probes that path from a new container and heals it (reconnects the
container to the network); `cronium doctor` probes, `cronium services start` and workers heal.

Its modules: ``managed`` (ensure, status, stop and remove; how to reach it), ``objects`` (the
container, network and volume, and the config file copied in), ``path`` (the sidecars' path) and
``password``.
"""
from __future__ import annotations

from .managed import (
    DEFAULT_IMAGE,
    DEFAULT_NAME,
    DEFAULT_NETWORK,
    DEFAULT_PORT,
    DEFAULT_VOLUME,
    ManagedRedis,
    RedisStatus,
    ensure_redis,
    find_redis,
    redis_status,
    remove_redis,
    stop_redis,
)
from .objects import ServiceError
from .path import PathProbe, ensure_sidecar_path, heal_hint, heal_sidecar_path, probe_sidecar_path
from .password import load_or_create_password, password_path

__all__ = [
    "DEFAULT_IMAGE", "DEFAULT_NAME", "DEFAULT_NETWORK", "DEFAULT_VOLUME", "DEFAULT_PORT", "ManagedRedis",
    "RedisStatus", "ServiceError", "ensure_redis", "find_redis", "redis_status", "stop_redis", "remove_redis",
    "load_or_create_password", "password_path", "PathProbe", "probe_sidecar_path", "heal_sidecar_path",
    "ensure_sidecar_path", "heal_hint",
]
