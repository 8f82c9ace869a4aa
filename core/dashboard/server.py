"""Serving the dashboard from a thread of its own, so that the main thread keeps the signals.

Sanic's own runner wants the main thread (it installs signal handlers and may fork workers);
`cronium serve` already owns the main thread (worker + scheduler, SIGINT/SIGTERM handling). So
the dashboard runs Sanic's low-level server (`app.create_server`) on an event loop in a daemon
thread: `start()` binds (a taken port is a clear `UsageError`) and returns once it serves,
`stop()` closes the open connections (live log streams too) and ends the loop. `cronium
dashboard` and `cronium serve` use it the same way.
"""
from __future__ import annotations

import asyncio
import socket
import threading

from cronium.core.errors import PortInUse

from .app import create_app
from .auth import check_bind, load_access


class DashboardServer:
    """The dashboard on host:port (port 0: a free one; `url` says which). `store` is the Store or
    a callable returning it, called only after the access rules passed (a refused bind needs no Redis)."""

    def __init__(self, config, *, host: str | None = None, port: int | None = None, store=None):
        self.host = host or config["dashboard.host"]
        self.port = config["dashboard.port"] if port is None else port
        access = load_access(config)
        check_bind(self.host, access)
        self.app = create_app(config, store=store() if callable(store) else store, access=access)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server = None
        self._thread = threading.Thread(target=self._run, name="cronium-dashboard", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "DashboardServer":
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise PortInUse(f"cannot serve the dashboard on {self.host}:{self.port}: "
                             f"{getattr(self._error, 'strerror', None) or self._error}",
                             hint="choose another port (--port, dashboard.port) or host")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._open())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._close())
        self.loop.close()

    async def _open(self) -> None:
        # Sanic reads port 0 as "its default, 8000": bind the socket here so 0 means a free port.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        server = await self.app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
        if server is None or server.server is None:
            raise OSError(f"Sanic did not start a server on {self.host}:{self.port}")
        await server.startup()
        await server.before_start()
        await server.after_start()
        self.port = server.server.sockets[0].getsockname()[1]
        self._server = server

    async def _close(self) -> None:
        server = self._server
        await server.before_stop()
        for conn in list(server.connections):
            conn.close_if_idle() or conn.close()
        server.server.close()
        await server.after_stop()
        for task in [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]:
            task.cancel()

    def stop(self) -> None:
        """Stop serving (idempotent); returns when the thread has ended."""
        if self._thread.is_alive() and self._server is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
