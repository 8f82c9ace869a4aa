"""What `cronium run` shows besides the job's output: the phase status line and the summary
(the same on the one-shot path and through the agent)."""
from __future__ import annotations

import json
import sys


class StatusLine:
    """Phase progress on a terminal (stderr), one line rewritten in place; where colour is off
    (NO_COLOR, --no-color, TERM=dumb) plain lines without escape sequences instead."""

    LABELS = {"token": "token", "network": "network", "sidecar": "sidecar", "job": "running", "cleanup": "cleanup"}

    def __init__(self, enabled: bool, color: bool = True):
        self.enabled = enabled
        self.color = color
        self.done: list[str] = []
        self.open = False

    def __call__(self, phase: str, state: str) -> None:
        if not self.enabled or phase not in self.LABELS:
            return
        if not self.color:
            self._plain(phase, state)
            return
        label = self.LABELS[phase]
        if state == "start":
            text = " ".join(self.done + [f"{label}…"])
            sys.stderr.write(f"\r\x1b[2K\x1b[2mcronium: {text}\x1b[0m")
            self.open = True
            if phase == "job":  # job output follows: end the status line
                sys.stderr.write("\n")
                self.open = False
        else:
            self.done.append(f"{label} {'✓' if state == 'done' else '✗'}")
            if phase == "cleanup" and self.open:
                sys.stderr.write("\r\x1b[2K\x1b[2mcronium: cleanup ✓\x1b[0m\n")
                self.open = False
        sys.stderr.flush()

    def _plain(self, phase: str, state: str) -> None:
        label = self.LABELS[phase]
        if state != "start":
            self.done.append(f"{label} {'ok' if state == 'done' else 'failed'}")
        if (phase == "job" and state == "start") or (phase == "cleanup" and state != "start"):
            sys.stderr.write(f"cronium: {' '.join(self.done + ([label] if state == 'start' else []))}\n")
            sys.stderr.flush()


def summary_text(result) -> str:
    lines = [f"status: {result.status}" + (f" (exit code {result.exit_code})" if result.exit_code is not None else "")]
    if result.error:
        lines.append(f"error: {result.error}")
    lines.append(f"execution: {result.execution_id}")
    lines.append(f"duration: {result.duration:.2f}s")
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items() if k != "cleanup")
    lines.append(f"phases: {timings}")
    if result.output is not None:
        lines.append(f"output: {json.dumps(result.output, ensure_ascii=False)}")
    if result.condition is not None:
        lines.append(f"condition: {json.dumps(result.condition)}")
    return "\n".join(lines)
