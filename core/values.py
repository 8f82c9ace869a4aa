"""Values of configuration keys: size and duration parsers and the validators per key. Each
validator takes a raw value and returns the normalised one or raises `ValueError` saying what it
expects (config.py names the source and the key)."""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from .model import NAMESPACE_RE
from .terminal import ESCAPE_MODES

SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

def parse_size(text: str | int) -> int:
    """'256m' -> bytes. Accepts k/m/g/t with optional 'b'/'ib'; a bare number is bytes."""
    if isinstance(text, bool):
        raise ValueError("not a size")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("negative size")
        return text
    m = SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r}")
    number, unit, _ = m.groups()
    return int(float(number) * SIZE_UNITS[unit.lower()])


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float:
    """The one duration syntax: `90s`, `15m`, `1h30m`, `500ms`, `2d`, `1w`, or a plain number of
    seconds (no spaces, no sign) -> finite seconds; `ValueError` for anything else."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    elif text and _DURATION_PART.sub("", text) == "":
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    else:
        raise ValueError(f"not a duration: {text!r}")
    if seconds != seconds or seconds == float("inf"):
        raise ValueError(f"not a finite duration: {text!r}")
    return seconds


def parse_duration(text: str | int | float) -> float:
    """A config duration ('7d', '90m', seconds) -> seconds; '' is 0 (no limit)."""
    if isinstance(text, bool):
        raise ValueError("not a duration")
    if isinstance(text, (int, float)):
        if text < 0 or text != text or text == float("inf"):
            raise ValueError("not a finite non-negative duration")
        return float(text)
    return duration_seconds(text) if str(text).strip() else 0.0


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "a list of strings"
    return "a string"


# --- validators: (value) -> normalised value, raising ValueError(expected description) ----------

def _positive_number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise ValueError("a positive number of seconds")
    return v


def _seconds_or_zero(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError("a number of seconds, 0 or more")
    return v


def _positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError("a whole number above 0")
    return v


def _size(v: Any) -> str:
    try:
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise ValueError
        parse_size(v)
    except ValueError:
        raise ValueError("a size such as 256m, 1g or 512k") from None
    return str(v)


def _duration(v: Any) -> str:
    try:
        if not isinstance(v, str):
            raise ValueError
        parse_duration(v)
    except ValueError:
        raise ValueError("a duration such as 30d, 12h or 90m ('' for none)") from None
    return v


def _count(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("a whole number, 0 or more")
    return v


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in choices:
            raise ValueError("one of " + ", ".join(repr(c) for c in choices))
        return v
    return check


def _cidr(v: Any) -> str:
    try:
        if not isinstance(v, str):
            raise ValueError
        ipaddress.ip_network(v, strict=True)
    except ValueError:
        raise ValueError("an IPv4 network such as 10.213.0.0/16") from None
    return str(v)


def _prefix(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= 29:
        raise ValueError("an integer subnet prefix length between 16 and 29")
    return v


def _namespace(v: Any) -> str:
    if not isinstance(v, str) or not NAMESPACE_RE.match(v):
        raise ValueError("a namespace of 1-64 letters, digits, '_', '.' or '-'")
    return v


def _user(v: Any) -> str:
    if not isinstance(v, str) or not re.match(r"^[1-9]\d*(:\d+)?$", v):
        raise ValueError("a non-root numeric user such as '10001:10001'")
    return v


def uid_range(v: Any) -> tuple[int, int]:
    """`security.uid_range` "LOW-HIGH" -> (low, high): non-system uids (1000 or more) below 2^31-1."""
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", v) if isinstance(v, str) else None
    if not m or not 1000 <= int(m.group(1)) <= int(m.group(2)) <= 2**31 - 2:
        raise ValueError("a uid range such as '200000-265535' (LOW-HIGH, 1000 <= LOW <= HIGH < 2147483647)")
    return int(m.group(1)), int(m.group(2))


def _uid_range(v: Any) -> str:
    uid_range(v)
    return v


def _key_prefix(v: Any) -> str:
    """The prefix goes into the sidecar's ACL key patterns (`~<prefix>exec:…`): a glob character
    (`*`, `?`, `[`) or a space there would widen or break them."""
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", v):
        raise ValueError("1-64 letters, digits, '_', '.', ':' or '-' (it is used inside Redis ACL key patterns)")
    return v


def _seconds_or_zero(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v or v == float("inf"):
        raise ValueError("a number of seconds, 0 or more (0 = off)")
    return v


#: A registry address as image names carry it: host or host:port, no scheme, no path.
REGISTRY_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(?::\d{1,5})?")


def _registry(v: Any) -> str:
    if not isinstance(v, str) or (v and not REGISTRY_RE.fullmatch(v)):
        raise ValueError("a registry address such as 'registry.lan:5000' or '10.0.0.5:5000' "
                         "(no scheme, no path; '' for none)")
    return v


VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "timeout": _positive_number,
    "namespace": _namespace,
    "token.algorithm": _one_of("EdDSA", "HS256"),
    "token.grace": _positive_number,
    "redis.sidecar_auth": _one_of("acl", "shared"),
    "redis.key_prefix": _key_prefix,
    "redis.connect_timeout": _positive_number,
    "redis.command_timeout": _positive_number,
    "network.pool": _cidr,
    "network.subnet_prefix": _prefix,
    "sidecar.memory": _size,
    "sidecar.ready_timeout": _positive_number,
    "agent.idle_timeout": _seconds_or_zero,
    "agent.start_timeout": _positive_number,
    "limits.max_memory": _size,
    "limits.max_timeout": _positive_number,
    "limits.stop_grace": _positive_number,
    "logs.docker_driver": _one_of("none", "json-file", "local"),
    "logs.terminal_escape": _one_of(*ESCAPE_MODES),
    "logs.max_bytes": _size,
    "services.redis_maxmemory": _size,
    "services.path_check_interval": _seconds_or_zero,
    "images.registry": _registry,
    "retention.max_age": _duration,
    "retention.max_count": _count,
    "retention.interval": _positive_number,
    "retention.batch": _count,
    "heartbeat.ttl": _positive_number,
    "heartbeat.interval": _positive_number,
    "queue.claim_interval": _positive_number,
    "queue.claim_min_idle": _positive_number,
    "worker.reap_interval": _positive_number,
    "worker.shutdown_grace": _positive_number,
    "scheduler.lease_ttl": _positive_number,
    "scheduler.starting_deadline": _positive_number,
    "variables.max_value_bytes": _positive_int,
    "variables.max_count": _positive_int,
    "variables.max_bytes": _positive_int,
    "security.uid_range": _uid_range,
    # per profile (suffix match on profiles.<name>.<key>)
    "profile.memory": _size,
    "profile.swap": _size,
    "profile.tmpfs_size": _size,
    "profile.user": _user,
}
