"""The store is the only Redis boundary: no module of core/ or plugins/ outside core/store/ imports
the `redis` package or reaches a Redis client through a `.redis` attribute (`store.redis.hget`,
or `r = store.redis` to call it later). Other code calls the store's repositories."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "core" / "store"


def _modules() -> list[Path]:
    paths = [p for top in ("core", "plugins") for p in sorted((ROOT / top).rglob("*.py"))]
    return [p for p in paths if STORE not in p.parents]


def redis_uses(source: str) -> list[str]:
    """Each import of the `redis` package and each `.redis` attribute access, as 'line: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "redis"]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "redis":
            found.append(f"{node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Attribute) and node.attr == "redis":
            found.append(f"{node.lineno}: .redis")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def test_the_check_finds_what_it_forbids():
    source = ("import redis\nimport redis.exceptions\nfrom redis import Redis\n"
              "store.redis.hget('k', 'f')\nr = store.redis\nfrom .store import Store\ncfg['images.redis']\n")
    assert redis_uses(source) == ["1: import redis", "2: import redis.exceptions", "3: from redis import …",
                                  "4: .redis", "5: .redis"]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_redis_outside_the_store(path):
    uses = redis_uses(path.read_text(encoding="utf-8"))
    assert not uses, (f"{path.relative_to(ROOT)} talks to Redis itself ({'; '.join(uses)}): add or use a "
                      "repository method in core/store/ (store.records, store.queue, …) instead")
