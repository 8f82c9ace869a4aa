"""Formatting numbers, printing tables, and the rows of the summary table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .stats import median, paired_ratio, summarize


def fmt_num(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, str):
        return value
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if abs(value) >= 1000:
        return f"{value:,.0f}{(' ' + unit) if unit else ''}"
    if abs(value) >= 100:
        return f"{value:.0f}{(' ' + unit) if unit else ''}"
    return f"{value:.2f}{(' ' + unit) if unit else ''}"


def fmt_spread(s: dict[str, float], unit: str = "") -> str:
    """'median (p10–p90)' of a summarize() dict."""
    if not s or not s.get("n"):
        return "–"
    if s["n"] == 1:
        return fmt_num(s["median"], unit)
    if s["n"] < 5:
        return f"{fmt_num(s['median'], unit)} ({fmt_num(s['min'], '')}–{fmt_num(s['max'], '')} min–max)"
    return f"{fmt_num(s['median'], unit)} ({fmt_num(s['p10'], '')}–{fmt_num(s['p90'], '')})"


def fmt_ratio(r: float | None) -> str:
    if r is None or r != r:
        return "–"
    return f"{r:.2f}×"


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    line = "  ".join("-" * w for w in widths)
    out = []
    if title:
        out.append(f"\n== {title} ==")
    out.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    out.append(line)
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    text = "\n".join(out)
    print(text, flush=True)
    return text


@dataclass
class Row:
    """One line of the summary table. `baseline`/`cronium` are the medians (numbers) in `unit`;
    `ratio` is cronium / baseline computed pair by pair (median of per-pair ratios)."""

    benchmark: str
    metric: str
    unit: str
    baseline: Any
    cronium: Any
    ratio: float | None
    target: str
    met: bool | None
    baseline_spread: str = ""
    cronium_spread: str = ""

    @classmethod
    def paired(cls, benchmark: str, metric: str, unit: str, cronium: Sequence[float], baseline: Sequence[float],
               max_ratio: float | None = None) -> "Row":
        """A row of two paired series of timings: medians, the pair-by-pair ratio, both spreads and,
        with `max_ratio`, the target `≤ max_ratio×`."""
        ratio = paired_ratio(cronium, baseline)
        return cls(benchmark, metric, unit, median(baseline), median(cronium), ratio,
                   "–" if max_ratio is None else f"≤ {max_ratio}×", None if max_ratio is None else ratio <= max_ratio,
                   fmt_spread(summarize(baseline), unit), fmt_spread(summarize(cronium), unit))

    def cells(self) -> list[str]:
        met = "–" if self.met is None else ("yes" if self.met else "NO")
        b = self.baseline_spread or fmt_num(self.baseline, self.unit)
        c = self.cronium_spread or fmt_num(self.cronium, self.unit)
        return [self.benchmark, self.metric, b, c, fmt_ratio(self.ratio), self.target, met]


SUMMARY_HEADERS = ("benchmark", "metric", "baseline", "cronium", "ratio", "target", "met")


def print_rows(rows: Sequence[Row], title: str) -> str:
    return print_table(SUMMARY_HEADERS, [r.cells() for r in rows], title=title)


def log(msg: str) -> None:
    print(f"  · {msg}", flush=True)
