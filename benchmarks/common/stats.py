"""Timing and statistics: the clock, percentiles, summaries and pair-by-pair ratios."""
from __future__ import annotations

import time
from typing import Sequence

now = time.perf_counter


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def summarize(values: Sequence[float]) -> dict[str, float]:
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": median(xs), "p10": percentile(xs, 10), "p90": percentile(xs, 90),
            "min": min(xs), "max": max(xs), "mean": sum(xs) / len(xs)}


def paired_ratios(cronium: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """cronium[i] / baseline[i] for every pair where both exist (pairs ran back to back)."""
    return [c / b for c, b in zip(cronium, baseline) if c is not None and b not in (None, 0)]


def paired_ratio(cronium: Sequence[float], baseline: Sequence[float]) -> float:
    """The median of the per-pair ratios (NaN when there is no pair)."""
    return median(paired_ratios(cronium, baseline))
