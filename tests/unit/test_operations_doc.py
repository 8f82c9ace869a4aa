"""docs/operations.md stays true to the code: the metric names, the commands and the config keys it
names exist (and every metric cronium exports is documented)."""
from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner
from cronium.core.cli import cli
from cronium.core.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "operations.md").read_text()
METRICS_SOURCE = (ROOT / "core" / "fleet" / "metrics.py").read_text()


def exported_metrics() -> set[str]:
    return set(re.findall(r'"(cronium_[a-z_]+)"', METRICS_SOURCE))


def test_documented_metrics_are_the_exported_ones():
    documented = set(re.findall(r"\b(cronium_[a-z_]+)\b", DOC))
    assert exported_metrics(), "no metric names found in core/fleet/metrics.py"
    assert documented - exported_metrics() == set(), "documented but not exported"
    assert exported_metrics() - documented == set(), "exported but not documented"


def command_lines() -> list[str]:
    spans = re.findall(r"`((?:/opt/cronium/bin/)?cronium [^`\n]+)`", DOC)
    lines = [line.strip() for line in DOC.splitlines()
             if re.match(r"\s*(/opt/cronium/bin/)?cronium ", line)]
    return [re.sub(r"^(/opt/cronium/bin/)?cronium ", "", text).split("#")[0].strip() for text in spans + lines]


def test_documented_commands_exist():
    seen = set()
    for text in command_lines():
        group, path = cli, []
        for word in text.split():
            if not isinstance(group, click.Group) or word not in group.commands:
                break
            group = group.commands[word]
            path.append(word)
        assert path, f"`cronium {text}` in docs/operations.md is not a cronium command"
        options = [w.split("=")[0] for w in text.split()[len(path):] if w.startswith("--")]
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        for option in options:
            assert option in result.output, f"`cronium {' '.join(path)}` has no option {option}"
        seen.add(" ".join(path))
    assert {"serve", "prune", "images build", "services stop", "doctor"} <= seen


def test_documented_config_keys_exist(tmp_path):
    keys = {s.key for s in load_config(environ={}, use_user_config=False, cwd=tmp_path).settings()}
    sections = {k.split(".")[0] for k in keys}
    named = {span for span in re.findall(r"`([a-z_]+\.[a-z_]+)`", DOC) if span.split(".")[0] in sections}
    assert named, "no config keys found in docs/operations.md"
    assert named - keys == set()
