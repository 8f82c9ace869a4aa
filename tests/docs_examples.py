"""Code blocks of the docs that tests run, so a documented example cannot rot."""
from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def example_block(filename: str, page: str, lang: str) -> str:
    """The ```<lang> block of docs/<page> whose first line is `# <filename>`."""
    text = (DOCS / page).read_text()
    start = text.index(f"```{lang}\n# {filename}\n") + len(f"```{lang}\n")
    return text[start:text.index("```", start)]


def python_example(filename: str, page: str = "plugins.md") -> str:
    """The ```python block of docs/<page> whose first line is `# <filename>`."""
    return example_block(filename, page, "python")
