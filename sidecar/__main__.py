"""`python -m cronium.sidecar [--settings FILE]`: validate the settings and serve the runtime API.

Without `--settings` the settings JSON is read from stdin until EOF. Once the server accepts
connections and the store has been asked once, exactly one line
`{"event": "ready", "host": <address>, "port": <port>, "store": "ok" | "unavailable"}` is written to
stdout; all logging goes to stderr. Bad settings (also: no address in `listen_subnet`): a message on
stderr (never a secret) and exit status 2.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys

from .errors import SettingsError
from .settings import listen_address, load_settings

EXIT_BAD_SETTINGS = 2


def main(argv: list[str] | None = None) -> int:
    settings_path = _settings_path(sys.argv[1:] if argv is None else argv)
    # Import the server before waiting for the settings: a sidecar started ahead of time (the warm
    # pool) then has nothing left to load when its settings arrive.
    from .app import create_app

    try:
        settings = load_settings(_read_settings_text(settings_path))
        host = listen_address(settings)
    except SettingsError as exc:
        print(f"cronium-sidecar: invalid settings: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    app.after_server_start(_start_ready_announcement(host, settings.port))
    app.run(host=host, port=settings.port, single_process=True, access_log=False, motd=False)
    return 0


def _settings_path(argv: list[str]) -> str | None:
    """`--settings FILE`, if given. argparse (0.4 MB of a sidecar's memory) is loaded only for arguments:
    the orchestrator passes none."""
    if not argv:
        return None
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cronium.sidecar", description="cronium runtime-API sidecar")
    parser.add_argument("--settings", metavar="FILE", help="read the settings JSON from FILE instead of stdin")
    return parser.parse_args(argv).settings


def _read_settings_text(path: str | None) -> bytes:
    if path is None:
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file: {exc.strerror}") from None


def _start_ready_announcement(host: str, port: int):
    """An `after_server_start` listener that announces readiness once the server loop runs.

    The line also says whether the store answered a PING (the same check `GET /health` reuses),
    so the orchestrator needs no request of its own: it cannot reach the sidecar, which listens on
    the job network only.

    Sanic installs its SIGTERM handler before the `after_server_start` listeners run, but a signal
    handled while they run is lost. Announcing only once the app is serving guarantees that a
    SIGTERM sent after the ready line stops the sidecar.
    """

    async def announce_when_serving(app) -> None:
        while not app.state.is_running:
            await asyncio.sleep(0)
        store = "ok" if await app.ctx.store_check.reachable_now(app.ctx.store) else "unavailable"
        sys.stdout.write(json.dumps({"event": "ready", "host": host, "port": port, "store": store}) + "\n")
        sys.stdout.flush()

    async def start(app) -> None:
        app.add_task(announce_when_serving(app))

    return start


if __name__ == "__main__":
    from .lean import install

    install()
    sys.exit(main())
