"""Small charts drawn on the server as inline SVG: no JavaScript, no chart library.

- `bar_chart`: vertical bars with a label under each (jobs per minute, phase durations);
- `workflow_graph`: jobs as boxes in layers (a job sits one layer right of its deepest parent),
  edges as lines labelled with their condition.

Every text that reaches the SVG — job names, edge conditions, labels — goes through `escape`
(job names come from deployment files, which may come from a less trusted user than the
operator). The result is a `Markup`, so templates insert it as is and escape nothing twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape

BAR_COLOR = "#4a7bd0"
TEXT_STYLE = 'font-family="sans-serif" font-size="10" fill="#333"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    title: str = ""  # tooltip (e.g. the exact value with its unit)


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 600, height: int = 160,
              every_label: int = 1) -> Markup:
    """A bar chart; `every_label` shows every n-th label only (60 minutes need fewer labels)."""
    top, bottom, left = 18, 28, 34
    plot_h = height - top - bottom
    peak = max((b.value for b in bars), default=0) or 1
    step = (width - left - 4) / max(1, len(bars))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<text x="{left}" y="12" {TEXT_STYLE}>{escape(title)}</text>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" {TEXT_STYLE}>{escape(_number(peak))}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" stroke="#999"/>']
    for i, bar in enumerate(bars):
        h = plot_h * max(0.0, bar.value) / peak
        x = left + i * step
        parts.append(f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(1.0, step - 2):.1f}" '
                     f'height="{h:.1f}" fill="{BAR_COLOR}"><title>{escape(bar.title or bar.label)}</title></rect>')
        if i % every_label == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - 14}" text-anchor="middle" '
                         f'{TEXT_STYLE}>{escape(bar.label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def layers(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: 0 without parents, else one more than its deepest parent (cycles, which
    deployment validation refuses, are cut where they close)."""
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for parent, child in edges:
        if parent in parents and child in parents:
            parents[child].append(parent)
    depth: dict[str, int] = {}

    def visit(node: str, path: frozenset[str]) -> int:
        if node not in depth:
            depth[node] = 1 + max((visit(p, path | {node}) for p in parents[node] if p not in path), default=-1)
        return depth[node]

    for node in nodes:
        visit(node, frozenset())
    return depth


def workflow_graph(nodes: Sequence[str], edges: Sequence[tuple[str, str, str]], *,
                   box_w: int = 150, box_h: int = 26, gap_x: int = 70, gap_y: int = 18) -> Markup:
    """Jobs as boxes (layered left to right), edges (parent, child, condition) as labelled lines."""
    depth = layers(nodes, [(p, c) for p, c, _ in edges])
    rows: dict[int, list[str]] = {}
    for node in sorted(nodes):
        rows.setdefault(depth[node], []).append(node)
    place = {node: (10 + layer * (box_w + gap_x), 10 + i * (box_h + gap_y))
             for layer, members in rows.items() for i, node in enumerate(members)}
    width = 20 + (max(rows, default=0) + 1) * (box_w + gap_x) - gap_x
    height = 20 + max((len(m) for m in rows.values()), default=0) * (box_h + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="graph" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>workflow</title>']
    for parent, child, when in edges:
        if parent not in place or child not in place:
            continue
        (px, py), (cx, cy) = place[parent], place[child]
        x1, y1, x2, y2 = px + box_w, py + box_h / 2, cx, cy + box_h / 2
        parts.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#777"/>'
                     f'<circle cx="{x2}" cy="{y2}" r="3" fill="#777"/>'
                     f'<text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 - 3:.1f}" text-anchor="middle" '
                     f'{TEXT_STYLE}>{escape(when)}</text>')
    for node, (x, y) in place.items():
        parts.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" fill="#eef2fa" stroke="#4a7bd0"/>'
                     f'<text x="{x + 6}" y="{y + box_h / 2 + 4}" {TEXT_STYLE}>{escape(_clip(node, box_w))}'
                     f'<title>{escape(node)}</title></text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _clip(text: str, box_w: int) -> str:
    room = max(4, box_w // 6)
    return text if len(text) <= room else text[:room - 1] + "…"


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or float(value).is_integer() else f"{value:.2g}"
