"""The `cronium` command line (a Click group); one module per command family."""
from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
