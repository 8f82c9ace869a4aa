"""The services one orchestrating process shares between its jobs: config, plugins, the Docker
client, the Redis store. Created once per process; everything is connected lazily, on first use,
so that `cronium --help` and friends stay fast."""
from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from .config import Config, load_config, state_dir
from .errors import EngineUnavailable
from .model import new_owner_id
from .plugins import CroniumPluginManager, Hooks, plugin_manager_for

if TYPE_CHECKING:
    import docker

    from .owners import Heartbeat
    from .store import Store


def connect_docker(config: Config, *, pool_size: int = 64) -> "docker.DockerClient":
    """A Docker SDK client for the configured engine; `EngineUnavailable` when it doesn't answer."""
    import docker
    from docker.errors import DockerException

    try:
        if config["docker.url"]:
            client = docker.DockerClient(base_url=config["docker.url"], timeout=config["docker.timeout"],
                                         max_pool_size=pool_size)
        else:
            client = docker.from_env(timeout=config["docker.timeout"], max_pool_size=pool_size)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(_short_docker_error(exc)) from None
    except Exception as exc:  # requests' connection errors surface raw on some paths
        raise EngineUnavailable(f"{type(exc).__name__}: {exc}") from None
    return client


def _short_docker_error(exc: Exception) -> str:
    text = str(exc)
    if "FileNotFoundError" in text or "No such file" in text:
        return "no Docker socket at the configured address"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    return text.splitlines()[0][:200]


class Runtime:
    """Per-process services handed to hooks as `runtime`."""

    def __init__(self, config: Config | None = None, *, pm: CroniumPluginManager | None = None,
                 owner: str | None = None, console: bool = False, warm_pool: bool = False,
                 read_only: bool = False):
        self.config = config or load_config()
        self.pm = pm or plugin_manager_for(self.config)
        self.owner = owner or new_owner_id()
        #: True when job output should also go to this process's terminal.
        self.console = console
        #: Whether plugins may keep resources warm between jobs: a long-lived process (a worker,
        #: an embedding application) opts in and must `close()` the runtime when done.
        self.warm_pool = warm_pool
        #: A read-only command's runtime: the managed Redis is used when it runs, never started.
        self.read_only = read_only
        self._extensions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._started = False
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        #: The owner heartbeat (`cronium.core.owners.Heartbeat`) once `start()` ran, else None.
        self.heartbeat: "Heartbeat | None" = None

    @cached_property
    def hooks(self) -> Hooks:
        """Typed calls of every hook on `pm` (see `cronium.core.plugins.Hooks`)."""
        return Hooks(self.pm)

    @cached_property
    def installation(self) -> str:
        """This installation's id (`cronium.core.owners.installation_id`), labelled on everything
        its executions create, so that a reaper touches only its own installation's objects."""
        from .owners import installation_id

        return installation_id(self)

    @cached_property
    def docker(self) -> "docker.DockerClient":
        return connect_docker(self.config)

    @cached_property
    def managed_redis(self):
        """The managed Redis endpoint (started if needed, unless `read_only`) — only when redis.url is empty."""
        from .host import services

        cfg = self.config
        if self.read_only:
            return services.find_redis(self.docker, name=cfg["services.redis_container"],
                                       network=cfg["services.network"], port=cfg["services.redis_port"],
                                       state_dir=state_dir())
        return services.ensure_redis(
            self.docker, image=cfg["images.redis"], name=cfg["services.redis_container"],
            network=cfg["services.network"], volume=cfg["services.redis_volume"],
            port=cfg["services.redis_port"], state_dir=state_dir(), maxmemory=cfg["services.redis_maxmemory"],
        )

    @cached_property
    def store(self) -> "Store":
        from .store import Store

        cfg = self.config
        if cfg.redis_managed:
            url = self.managed_redis.url
            hint = "check the managed Redis with `cronium services status`"
        else:
            url = cfg["redis.url"]
            hint = "check that the server in redis.url is running and reachable"
        store = Store(url, prefix=cfg["redis.key_prefix"], connect_timeout=cfg["redis.connect_timeout"],
                      command_timeout=cfg["redis.command_timeout"], hint=hint)
        store.ping()
        return store

    @property
    def sidecar_redis_url(self) -> str:
        """The Redis URL as reachable from the services network (without per-execution credentials)."""
        cfg = self.config
        if cfg["redis.sidecar_url"]:
            return cfg["redis.sidecar_url"]
        if cfg.redis_managed:
            return self.managed_redis.network_url
        return cfg["redis.url"]

    def connect(self) -> tuple["Store", "docker.DockerClient"]:
        """Redis and the Docker engine, connected now (before a job creates anything):
        `StoreUnavailable` / `EngineUnavailable` when one does not answer."""
        return self.store, self.docker

    @cached_property
    def spool(self):
        from .store import RecordSpool

        return RecordSpool(state_dir() / "spool")

    def flush_spool(self, wait: float = 0.0) -> bool:
        """Write spooled records to Redis, retrying for up to `wait` seconds while it does not
        answer (not while it is full: that needs a prune first). True when none is left."""
        import time

        from .errors import StoreFull, StoreUnavailable

        deadline = time.monotonic() + wait
        while True:
            try:
                self.spool.flush(self.store)
                return True
            except StoreFull:
                return False
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.5)

    def extension(self, name: str, factory):
        """A per-process object a plugin keeps between jobs (created once; its `close()` is called
        when the runtime closes)."""
        with self._lock:
            if name not in self._extensions:
                self._extensions[name] = factory()
            return self._extensions[name]

    def extension_if_present(self, name: str):
        """The extension `name` if some plugin created it in this process, else None."""
        with self._lock:
            return self._extensions.get(name)

    def warm_pool_idle(self) -> dict[str, int]:
        """Idle objects in each warm pool of this process: the extensions that count them
        (`idle_count()`: pooled sidecars, pooled slots), by extension name. Workers publish it in
        their heartbeat (the dashboard's fleet page shows it)."""
        with self._lock:
            extensions = dict(self._extensions)
        return {name: int(ext.idle_count()) for name, ext in sorted(extensions.items())
                if callable(getattr(ext, "idle_count", None))}

    def gate(self, name: str, size: int) -> threading.BoundedSemaphore:
        """A named semaphore shared by this process's jobs (e.g. to bound concurrent sidecar boots)."""
        with self._lock:
            gate = self._gates.get(name)
            if gate is None:
                gate = self._gates[name] = threading.BoundedSemaphore(max(1, size))
            return gate

    def start(self, kind: str = "run") -> list[tuple[str, BaseException]]:
        """Once per process, before its first job: start the owner heartbeat (`self.heartbeat`),
        reap what dead owners left behind (in the background), fire `startup`. Returns plugin
        failures."""
        from .owners import Heartbeat

        with self._lock:
            if self._started:
                return []
            self._started = True
        self.heartbeat = Heartbeat(self, kind)
        self.heartbeat.start()
        if self.config["gc.on_start"]:
            self._reaper = threading.Thread(target=self._reap_quietly, name="cronium-reaper", daemon=True)
            self._reaper.start()
        return self.hooks.startup(runtime=self)

    def _reap_quietly(self) -> None:
        """Best effort at start-up: `cronium gc` reports errors loudly; here they are only logged
        at debug level (a `cronium run` must not print them)."""
        from .reaper import reap

        try:
            self.flush_spool()
            reap(self)
        except Exception:
            logging.getLogger("cronium.reaper").debug("background reap failed", exc_info=True)

    def close(self) -> None:
        for ext in list(self._extensions.values()):
            close = getattr(ext, "close", None)
            if close is not None:
                close()
        self._extensions.clear()
        reaper = self.__dict__.get("_reaper")
        if reaper is not None:
            reaper.join(10)
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if "docker" in self.__dict__:
            self.docker.close()
        if "store" in self.__dict__:
            self.store.close()
