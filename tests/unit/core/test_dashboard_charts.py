"""The dashboard's server-side charts (core/dashboard/charts.py): layout and escaping."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from cronium.core.dashboard.charts import Bar, bar_chart, layers, workflow_graph

HOSTILE = "<script>alert(1)</script>"


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # well-formed: a raw '<script>' in a label would not even parse as intended
    return ["".join(el.itertext()) for el in root.iter() if el.tag.endswith(("text", "title"))]


def test_a_hostile_job_name_and_condition_are_text_in_the_graph():
    svg = str(workflow_graph([HOSTILE, "b"], [(HOSTILE, "b", '"><script>x</script>')]))
    assert "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    texts = _texts(svg)
    assert HOSTILE in texts  # the full name, as text, in the box's tooltip
    assert any('"><script>x</script>' in t for t in texts)


def test_bar_labels_and_titles_are_escaped():
    svg = str(bar_chart([Bar(HOSTILE, 3, title=HOSTILE + " 3 runs")], title="<b>jobs</b>"))
    assert "<script" not in svg and "<b>" not in svg
    assert HOSTILE in _texts(svg)


def test_bars_scale_to_the_peak():
    svg = str(bar_chart([Bar("a", 1), Bar("b", 4)], title="t", height=160))
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert heights[1] == 4 * heights[0] > 0


def test_layers_put_a_job_right_of_its_deepest_parent():
    depth = layers(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("a", "c")])
    assert depth == {"a": 0, "b": 1, "c": 2, "d": 0}


def test_a_cycle_does_not_hang_the_layout():
    depth = layers(["a", "b"], [("a", "b"), ("b", "a")])
    assert set(depth) == {"a", "b"}


def test_graph_draws_one_box_per_job_and_one_line_per_edge():
    svg = str(workflow_graph(["check", "notify", "all-clear"],
                             [("check", "notify", "condition_true"), ("check", "all-clear", "condition_false")]))
    assert svg.count("<rect") == 3 and svg.count("<line") == 2
    assert "condition_true" in _texts(svg) and "condition_false" in _texts(svg)
