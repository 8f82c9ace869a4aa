"""An execution's phase timeline: its `timings` as bars on one time axis, drawn server-side (SVG)."""
from __future__ import annotations

#: Phases in the order they run; others found in `timings` follow. `sidecar_ready` is part of
#: `sidecar` (how long readiness took), not a phase of its own.
PHASES = ("prepare", "token", "slot", "network", "sidecar", "job", "cleanup")
NOT_PHASES = ("sidecar_ready",)
#: The SVG's width in user units; bars are ROW units high.
WIDTH, ROW = 1000, 22


def phase_bars(timings: dict) -> list[dict]:
    """One bar per timed phase: name, seconds, x, width, y (SVG units), each bar starting where
    the previous ended (the phases run one after the other)."""
    names = [p for p in PHASES if p in timings] + sorted(p for p in timings if p not in PHASES + NOT_PHASES)
    spans = [(p, float(timings[p])) for p in names if isinstance(timings[p], (int, float)) and timings[p] >= 0]
    total = sum(s for _, s in spans)
    if not total:
        return []
    bars, start = [], 0.0
    for i, (name, seconds) in enumerate(spans):
        x = start / total * WIDTH
        bars.append({"name": name, "seconds": seconds, "x": round(x, 1), "y": i * ROW,
                     "width": round(max(seconds / total * WIDTH, 2), 1)})
        start += seconds
    return bars
