"""The managed Redis password: generated once, kept 0600 in the caller's state dir."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from .objects import ServiceError

PASSWORD_FILE = "redis-password"


def password_path(state_dir: os.PathLike | str) -> Path:
    return Path(state_dir) / PASSWORD_FILE


def load_or_create_password(state_dir: os.PathLike | str) -> str:
    """The managed Redis password: created once (0600, in a 0700 state dir), then reused."""
    path = password_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if (path.stat().st_mode & 0o777) != 0o600:
            os.chmod(path, 0o600)
        password = path.read_text().strip()
        if len(password) < 16:
            raise ServiceError(f"the managed Redis password file {path} is empty or too short",
                               hint="delete it: a new password is generated and the container re-created "
                                    "(the data volume is kept)")
        return password
    password = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password
