"""Keep the sidecar process from loading what it never uses (called by `python -m cronium.sidecar` only).

Sanic imports, whatever the app uses, `websockets` (for websocket routes) and `tracerite` +
`html5tagger` (for HTML error pages): 3.4 MB of a sidecar's anonymous memory, measured in the
image; their import steps take about 30 ms of CPU (README, "lean sidecar": the whole boot, with
the image's -OO bytecode, fell 0.28 → 0.22 s in a same-run comparison). The sidecar has no websocket route (Sanic then never builds its
websocket protocol) and answers every error as JSON (`create_app`: one exception handler for
everything, `FALLBACK_ERROR_FORMAT = "json"`), so the names Sanic imports from them are needed only
as names. `install()` puts small stand-ins for those packages into `sys.modules` before Sanic is
imported; using one of their names for real (a websocket, an HTML page) raises `RuntimeError`.

Only the sidecar's own process installs them: tests and other programs that import `cronium.sidecar`
keep the real packages. `install()` does nothing once Sanic is imported.
"""
from __future__ import annotations

import sys
import types

#: Modules replaced by stand-ins, and the names Sanic reads from them while it is imported.
STAND_INS: dict[str, dict[str, object]] = {
    "websockets": {},
    "websockets.connection": {},
    "websockets.datastructures": {},
    "websockets.exceptions": {},
    "websockets.frames": {},
    "websockets.http11": {},
    "websockets.protocol": {},
    "websockets.server": {},
    "websockets.typing": {},
    "tracerite": {},
    "tracerite.html": {"style": "", "javascript": ""},
    "tracerite.inspector": {"blacklist_types": ()},
    "html5tagger": {},
}


class _Unavailable(type):
    """The metaclass of the stand-in names: any attribute is the name itself; creating one fails."""

    def __getattr__(cls, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return cls

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"{cls.__qualname__} is not available in the cronium sidecar (websockets and "
                           "HTML pages are left out of its process; see cronium.sidecar.lean)")


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        stand_in = _Unavailable(f"{self.__name__}.{name}", (Exception,), {})
        setattr(self, name, stand_in)
        return stand_in


def install() -> bool:
    """Put the stand-ins into `sys.modules`; False (and nothing changed) when Sanic is already imported
    or one of the packages is, so that a process never mixes real and stand-in modules."""
    if "sanic" in sys.modules or any(name in sys.modules for name in STAND_INS):
        return False
    for name, attributes in STAND_INS.items():
        module = _StandInModule(name, "stand-in: not loaded in the cronium sidecar")
        module.__dict__.update(attributes)
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    return True
