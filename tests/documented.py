"""Code blocks of the docs that tests run (importable as a top-level module, like ports.py)."""
from __future__ import annotations

from pathlib import Path

PLUGINS_MD = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
EXECUTOR_MARK = "```python\n# my_executor.py\n"


def documented_executor_source() -> str:
    """The minimal executor of docs/plugins.md ("An executor for another engine"), verbatim."""
    text = PLUGINS_MD.read_text()
    assert text.count(EXECUTOR_MARK) == 1, "docs/plugins.md must hold exactly one `# my_executor.py` block"
    return text.split(EXECUTOR_MARK, 1)[1].split("```", 1)[0]
