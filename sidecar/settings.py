"""The sidecar settings document (see docs/architecture.md, "Sidecar settings and start-up").

`load_settings` validates the JSON document and returns a frozen `Settings`. Error messages name the
offending field and never repeat its value, so no secret (Redis password, signing key) leaks.
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import SettingsError
from .tokens import load_ed25519_public_pem
from .variable_script import VariableLimits

EXECUTION_ID_PATTERN = re.compile(r"exec_[0-9a-f]{16}")
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ALGORITHMS = ("EdDSA", "HS256")
MIN_HS256_SECRET_BYTES = 32
REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `per_minute` tokens refill per minute, up to `burst` tokens."""

    per_minute: int
    burst: int


@dataclass(frozen=True)
class AuthSettings:
    """How tokens are verified: the single accepted algorithm and its verification key."""

    algorithm: str
    verification_key: Ed25519PublicKey | bytes = field(repr=False)


@dataclass(frozen=True)
class Settings:
    """Validated sidecar settings."""

    execution_id: str
    job_id: str
    redis_url: str = field(repr=False)
    auth: AuthSettings
    namespace: str = "default"
    key_prefix: str = "cronium:"
    audience: str = "runtime-api"
    host: str = "0.0.0.0"
    #: Listen only on this container's own address in this IPv4 subnet (the job network's), found
    #: at start (`listen_address`); replaces `host`. None: listen on `host`.
    listen_subnet: ipaddress.IPv4Network | None = None
    port: int = 8081
    rate_limit: RateLimit = RateLimit(per_minute=1000, burst=1000)
    auth_failure_limit: RateLimit = RateLimit(per_minute=60, burst=20)
    #: `GET /health` (unauthenticated): all clients together.
    health_limit: RateLimit = RateLimit(per_minute=120, burst=30)
    max_body_bytes: int = 1024 * 1024
    variable_limits: VariableLimits = VariableLimits()


def load_settings(text: str | bytes) -> Settings:
    """Parse and validate the settings JSON document."""
    if not text.strip():
        raise SettingsError("the settings document is empty")
    try:
        document = json.loads(text)
    except ValueError as exc:
        position = f" (line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise SettingsError(f"the settings are not a valid JSON document{position}") from None
    return parse_settings(document)


def parse_settings(document: Any) -> Settings:
    """Validate an already decoded settings document."""
    fields = _Fields(document, "settings")
    settings = Settings(
        execution_id=fields.string("execution_id", pattern=EXECUTION_ID_PATTERN,
                                   pattern_text="exec_ followed by 16 lowercase hex characters"),
        job_id=fields.string("job_id", max_length=256),
        namespace=fields.string("namespace", default=Settings.namespace, pattern=NAMESPACE_PATTERN,
                                pattern_text="1-64 characters from A-Z a-z 0-9 _ . -"),
        redis_url=_redis_url(fields),
        key_prefix=fields.string("key_prefix", default=Settings.key_prefix, min_length=0, max_length=64),
        auth=_auth(fields.section("auth", required=True)),
        audience=fields.string("audience", default=Settings.audience, max_length=256),
        host=fields.string("host", default=Settings.host, max_length=255),
        listen_subnet=_listen_subnet(fields),
        port=fields.integer("port", default=Settings.port, minimum=1, maximum=65535),
        rate_limit=_rate_limit(fields.section("rate_limit"), Settings.rate_limit),
        auth_failure_limit=_rate_limit(fields.section("auth_failure_limit"), Settings.auth_failure_limit),
        health_limit=_rate_limit(fields.section("health_limit"), Settings.health_limit),
        max_body_bytes=fields.integer("max_body_bytes", default=Settings.max_body_bytes, minimum=1),
        variable_limits=_variable_limits(fields.section("variables")),
    )
    fields.reject_unknown()
    return settings


def _redis_url(fields: _Fields) -> str:
    url = fields.string("redis_url", max_length=4096)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise SettingsError("settings.redis_url: is not a valid URL") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise SettingsError("settings.redis_url: must be a redis://, rediss:// or unix:// URL")
    return url


def _listen_subnet(fields: _Fields) -> ipaddress.IPv4Network | None:
    if "listen_subnet" not in fields.document:
        return None
    if "host" in fields.document:
        raise SettingsError("settings: give either host or listen_subnet, not both")
    text = fields.string("listen_subnet", max_length=64)
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise SettingsError("settings.listen_subnet: must be an IPv4 subnet such as 10.0.0.0/28") from None


def listen_address(settings: Settings) -> str:
    """The address to listen on: `host`, or this container's own address in `listen_subnet`.

    The kernel picks the source address of a route into the subnet (a UDP `connect` sends
    nothing); it is ours in that subnet only if the container has an interface on it.
    """
    subnet = settings.listen_subnet
    if subnet is None:
        return settings.host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(subnet.network_address + 1), 9))
            address = probe.getsockname()[0]
        except OSError:
            address = None
    if address is None or ipaddress.IPv4Address(address) not in subnet:
        raise SettingsError(f"settings.listen_subnet: this container has no address in {subnet} "
                            "(is it attached to the job network?)")
    return address


def _auth(fields: _Fields) -> AuthSettings:
    algorithm = fields.string("algorithm", default="EdDSA")
    if algorithm not in ALGORITHMS:
        raise SettingsError(f"{fields.path}.algorithm: must be one of {', '.join(ALGORITHMS)}")
    key = fields.string("key", max_length=16384)
    fields.reject_unknown()
    if algorithm == "HS256":
        secret = key.encode()
        if len(secret) < MIN_HS256_SECRET_BYTES:
            raise SettingsError(f"{fields.path}.key: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES} bytes")
        return AuthSettings(algorithm, secret)
    public_key = load_ed25519_public_pem(key)
    if public_key is None:
        raise SettingsError(f"{fields.path}.key: must be an Ed25519 public key in PEM format")
    return AuthSettings(algorithm, public_key)


def _rate_limit(fields: _Fields, default: RateLimit) -> RateLimit:
    limit = RateLimit(
        per_minute=fields.integer("per_minute", default=default.per_minute, minimum=1),
        burst=fields.integer("burst", default=default.burst, minimum=1),
    )
    fields.reject_unknown()
    return limit


def _variable_limits(fields: _Fields) -> VariableLimits:
    default = VariableLimits()
    limits = VariableLimits(
        max_value_bytes=fields.integer("max_value_bytes", default=default.max_value_bytes, minimum=1),
        max_count=fields.integer("max_count", default=default.max_count, minimum=1),
        max_bytes=fields.integer("max_bytes", default=default.max_bytes, minimum=1),
    )
    fields.reject_unknown()
    return limits


class _Fields:
    """Reads typed fields from one JSON object, remembering which were read."""

    def __init__(self, document: Any, path: str) -> None:
        if not isinstance(document, dict):
            raise SettingsError(f"{path}: must be a JSON object")
        self.document = document
        self.path = path
        self.read: set[str] = set()

    def _get(self, name: str, default: Any) -> Any:
        self.read.add(name)
        if name in self.document:
            return self.document[name]
        if default is _REQUIRED:
            raise SettingsError(f"{self.path}.{name}: is required")
        return default

    def string(self, name: str, default: Any = None, *, min_length: int = 1, max_length: int = 128,
               pattern: re.Pattern[str] | None = None, pattern_text: str = "") -> str:
        value = self._get(name, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise SettingsError(f"{self.path}.{name}: must be a string")
        if not min_length <= len(value) <= max_length:
            raise SettingsError(f"{self.path}.{name}: must be {min_length}-{max_length} characters long")
        if pattern is not None and not pattern.fullmatch(value):
            raise SettingsError(f"{self.path}.{name}: must be {pattern_text}")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._get(name, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SettingsError(f"{self.path}.{name}: must be an integer")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise SettingsError(f"{self.path}.{name}: must be at least {minimum}{upper}")
        return value

    def section(self, name: str, *, required: bool = False) -> _Fields:
        value = self._get(name, _REQUIRED if required else {})
        return _Fields(value, f"{self.path}.{name}")

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.document) - self.read)
        if unknown:
            raise SettingsError(f"{self.path}: unknown setting(s) {', '.join(map(repr, unknown))}")


_REQUIRED = object()
