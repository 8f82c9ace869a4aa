"""Whether cronium colours what it writes: one place decides, for the CLI and the plugins alike.

Colour (and the status line's cursor movements) only on a terminal, and never when `NO_COLOR` is
set to anything non-empty (https://no-color.org), when `TERM=dumb`, or after `cronium --no-color`
(which sets `NO_COLOR` for the process, so plugins and child processes see it too).
"""
from __future__ import annotations

import os
from typing import Any

from .terminal import is_terminal


def color_enabled(stream: Any) -> bool:
    """True when escape sequences may be written to `stream`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def disable_color() -> None:
    """`--no-color`: no colour from here on, in this process and the processes it starts."""
    os.environ["NO_COLOR"] = "1"
