"""Small helpers shared by the integration tests (importable as a top-level module by pytest)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cronium_executable() -> str:
    exe = Path(sys.executable).parent / "cronium"
    return str(exe) if exe.exists() else shutil.which("cronium")


def acl_users(redis_client) -> list[str]:
    return [u.decode() if isinstance(u, bytes) else u for u in redis_client.acl_users()]


def execution_id_from(stderr: bytes) -> str:
    for line in stderr.decode().splitlines():
        if line.startswith("execution:"):
            return line.split()[1]
    raise AssertionError(f"no execution id in: {stderr.decode()}")


def acl_user_of(runtime, execution_id: str) -> str:
    """The ACL user of `execution_id`'s live attempt (one per attempt: `cronium-<exec>.<tag>`)."""
    keys = runtime.store.keys
    users = runtime.store.acl.names(keys.acl_user(execution_id) + ".")
    assert len(users) == 1, f"expected one ACL user of {execution_id}, found {users}"
    return users[0]
