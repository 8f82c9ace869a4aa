"""What the agent and its clients share: where the socket is, how messages are framed, how a job
spec travels, and the fingerprint of a configuration.

Framing: one JSON object per line (UTF-8, `\\n`-terminated). Bytes (a script, job output) travel
base64-encoded. A client sends one request (`{"op": "run" | "status" | "stop", …}`); for `run`
it may later send `{"op": "cancel"}`; the agent answers with messages that carry a type `t`:
`hello` (first, always), `refused`, `event`, `out`, `result`, `done`, `error`, `status`, `ok`.

Only the standard library is imported here: the client side of `cronium run` stays lean.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any, Iterator

from ..errors import AgentRefused
from ..model import JobSpec, Resources, Secret

#: Bumped when a message changes shape; a client and an agent of different versions do not talk.
PROTOCOL = 1
#: Upper bound of one message line (a script of up to this size, base64-encoded, fits).
MAX_LINE = 64 * 1024 * 1024
#: Keys that do not change how a job runs: the client's own (it renders the terminal itself) and
#: the agent's lifetime. Not part of the fingerprint.
CLIENT_SIDE_KEYS = frozenset({"logs.terminal_escape", "agent.enabled", "agent.start_timeout", "agent.idle_timeout",
                              "agent.wait_cleanup"})
#: Environment variables outside the CRONIUM_* config keys that change what the agent does.
ENGINE_ENV = ("DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_CONTEXT")


def agent_dir(state: Path) -> Path:
    """The agent's folder in the state dir `state` (created 0700)."""
    return state / "agent"


def socket_path(state: Path, fingerprint: str) -> Path:
    """The socket of the agent for one configuration: one agent per user and configuration."""
    return agent_dir(state) / f"agent-{fingerprint[:16]}.sock"


def fingerprint(config, cwd: str | None = None) -> str:
    """A digest of everything that decides how the agent runs a job: the resolved configuration
    (all keys but the client-side ones), the engine variables of the environment, and — only when
    a path in the configuration is relative (it resolves against it) — the working folder."""
    values = {s.key: s.value for s in config.settings() if s.key not in CLIENT_SIDE_KEYS}
    values["env"] = {name: os.environ.get(name, "") for name in ENGINE_ENV}
    if any(_relative_path(key, value) for key, value in values.items()):
        values["cwd"] = cwd or os.getcwd()
    values["protocol"] = PROTOCOL
    values["version"] = _version()
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _version() -> str:
    from .. import __version__

    return __version__


def _relative_path(key: str, value: Any) -> bool:
    if not (key in ("plugins_dir", "logs.dir") or key.endswith(".seccomp")) or not isinstance(value, str):
        return False
    return value not in ("", "default", "unconfined") and ":" not in value and not os.path.isabs(value)


def private_folder(path: Path) -> Path:
    """Create `path` (0700) or check it: it must be a folder (not a symlink) of this user that no
    one else may enter; a folder of ours with wider permissions is narrowed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise AgentRefused(f"the agent folder {path} is not a folder of this user",
                           hint="remove it, or set CRONIUM_STATE_DIR to a folder of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED, from the kernel)."""
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


# --- framing -------------------------------------------------------------------------------------

def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def messages(reader) -> Iterator[dict[str, Any]]:
    """Messages from a binary file object (`socket.makefile("rb")`) until the peer closes."""
    while True:
        line = reader.readline(MAX_LINE)
        if not line:
            return
        if not line.endswith(b"\n"):
            raise ValueError("message too long or cut off")
        yield json.loads(line)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


# --- job specs -----------------------------------------------------------------------------------

def spec_to_wire(spec: JobSpec) -> dict[str, Any]:
    """The spec as JSON: the script base64-encoded, secret values revealed (the socket is the
    owner's only; a secret never goes to a log or a record from here)."""
    return {
        "job_type": spec.job_type, "script": None if spec.script is None else b64(spec.script),
        "script_name": spec.script_name, "image": spec.image, "command": list(spec.command),
        "input": spec.input, "env": dict(spec.env),
        "secret_env": {k: v.reveal() for k, v in spec.secret_env.items()},
        "timeout": spec.timeout, "profile": spec.profile, "namespace": spec.namespace,
        "resources": [spec.resources.memory, spec.resources.cpus, spec.resources.pids],
        "job_id": spec.job_id, "job_name": spec.job_name, "egress": spec.egress,
        "metadata": dict(spec.metadata), "execution_id": spec.execution_id, "attempt": spec.attempt,
        "plugin_settings": {k: dict(v) for k, v in spec.plugin_settings.items()},
        "executor": spec.executor, "placement": list(spec.placement),
    }


def spec_from_wire(data: dict[str, Any]) -> JobSpec:
    """The inverse of `spec_to_wire` (a malformed message raises KeyError/TypeError/ValueError)."""
    memory, cpus, pids = data["resources"]
    fields = {k: v for k, v in data.items() if k not in ("script", "secret_env", "resources", "command", "placement")}
    return JobSpec(
        script=None if data["script"] is None else unb64(data["script"]),
        secret_env={str(k): Secret(str(v)) for k, v in data["secret_env"].items()},
        resources=Resources(memory=memory, cpus=cpus, pids=pids), command=tuple(data["command"]),
        placement=tuple(data.get("placement") or ()), **fields)
