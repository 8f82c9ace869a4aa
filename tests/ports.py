"""Loopback ports for tests (importable from every test folder: tests/ is on sys.path)."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (nothing listens on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
