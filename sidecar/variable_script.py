"""The one definition of how a variable is written: versions and quotas, checked atomically in Redis.

Both writers of variables run these Lua scripts: the sidecar (`sidecar/store.py`) and the
orchestrator's store (`cronium.core.store.variables`, behind `cronium vars set`). This module is
plain Python with no imports of cronium, so the sidecar image carries it and the core may import it.

Keys of a namespace (`P` = key prefix):

    P vars:<ns>           hash  variable -> JSON text of its value (unchanged since before versions)
    P vars:<ns>:versions  hash  variable -> version (a namespace-wide sequence number, >= 2)
    P vars:<ns>:meta      hash  `seq` (last version handed out), `bytes` (sum of name + value bytes)

A variable's version changes on every write. An absent variable has version 0 (so `If-Match: 0`
means "only if it does not exist"); a value written before versions existed has version 1. The
`bytes` counter is computed once from the hash when missing and then kept up to date by the script.
"""
from __future__ import annotations

from dataclasses import dataclass

#: The sidecar's and the CLI's defaults; the orchestrator's config keys override them.
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
DEFAULT_MAX_COUNT = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

#: Version of an absent variable.
ABSENT = 0


@dataclass(frozen=True)
class VariableLimits:
    """Per-namespace quotas: bytes of one value's JSON text, variables, bytes of names + values."""

    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_count: int = DEFAULT_MAX_COUNT
    max_bytes: int = DEFAULT_MAX_BYTES


def namespace_keys(key_prefix: str, namespace: str) -> tuple[str, str, str]:
    """(values hash, versions hash, meta hash) of a namespace, in the scripts' KEYS order."""
    values = f"{key_prefix}vars:{namespace}"
    return values, f"{values}:versions", f"{values}:meta"


READ = """
-- KEYS: values, versions. ARGV: variable. Returns {JSON text or false, version}.
local text = redis.call('HGET', KEYS[1], ARGV[1])
if not text then return {false, '0'} end
return {text, redis.call('HGET', KEYS[2], ARGV[1]) or '1'}
"""

WRITE = """
-- KEYS: values, versions, meta. ARGV: 'set' or 'delete', variable, JSON text (set),
-- expected version ('' = any), max value bytes, max count, max bytes.
-- Returns {outcome, detail}: {'ok', new version ('0' after delete)}, {'conflict', current version},
-- {'missing', '0'}, {'value_too_large', bytes}, {'too_many', count}, {'too_big', namespace bytes}.
local field, text, expected = ARGV[2], ARGV[3], ARGV[4]
local exists = redis.call('HEXISTS', KEYS[1], field) == 1
local current = '0'
if exists then current = redis.call('HGET', KEYS[2], field) or '1' end
if expected ~= '' and expected ~= current then return {'conflict', current} end
local total = tonumber(redis.call('HGET', KEYS[3], 'bytes') or '-1')
if total < 0 then
    total = 0
    for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
        total = total + #name + redis.call('HSTRLEN', KEYS[1], name)
    end
end
local old = 0
if exists then old = #field + redis.call('HSTRLEN', KEYS[1], field) end
if ARGV[1] == 'delete' then
    if not exists then return {'missing', '0'} end
    redis.call('HDEL', KEYS[1], field)
    redis.call('HDEL', KEYS[2], field)
    redis.call('HSET', KEYS[3], 'bytes', total - old)
    return {'ok', '0'}
end
if #text > tonumber(ARGV[5]) then return {'value_too_large', tostring(#text)} end
if not exists then
    local count = redis.call('HLEN', KEYS[1])
    if count >= tonumber(ARGV[6]) then return {'too_many', tostring(count)} end
end
local new_total = total - old + #field + #text
if new_total > tonumber(ARGV[7]) and new_total > total then return {'too_big', tostring(total)} end
redis.call('HSETNX', KEYS[3], 'seq', '1')
local version = redis.call('HINCRBY', KEYS[3], 'seq', 1)
redis.call('HSET', KEYS[1], field, text)
redis.call('HSET', KEYS[2], field, version)
redis.call('HSET', KEYS[3], 'bytes', new_total)
return {'ok', tostring(version)}
"""


def write_args(operation: str, key: str, json_text: str, expected: int | None, limits: VariableLimits) -> list[str]:
    """ARGV of `WRITE` (`expected` None: any version)."""
    return [operation, key, json_text, "" if expected is None else str(expected),
            str(limits.max_value_bytes), str(limits.max_count), str(limits.max_bytes)]


@dataclass(frozen=True)
class WriteOutcome:
    """What `WRITE` answered: `ok` (detail = the new version), `conflict` (the current version),
    `missing`, or a quota refusal (`value_too_large`, `too_many`, `too_big`)."""

    outcome: str
    detail: int

    @classmethod
    def from_reply(cls, reply) -> "WriteOutcome":
        outcome, detail = (part.decode() if isinstance(part, bytes) else str(part) for part in reply)
        return cls(outcome, int(detail))

    @property
    def is_quota_refusal(self) -> bool:
        return self.outcome in QUOTA_CONFIG_KEYS


#: Each quota refusal -> the orchestrator config key that sets the limit.
QUOTA_CONFIG_KEYS = {
    "value_too_large": "variables.max_value_bytes",
    "too_many": "variables.max_count",
    "too_big": "variables.max_bytes",
}


def quota_message(outcome: WriteOutcome, limits: VariableLimits, key: str, namespace: str) -> str:
    """The refusal text: which limit, its value, what was asked, and the config key that sets it."""
    config_key = QUOTA_CONFIG_KEYS[outcome.outcome]
    if outcome.outcome == "value_too_large":
        what = (f"the value of '{key}' is {outcome.detail} bytes of JSON; a value may have at most "
                f"{limits.max_value_bytes} bytes")
    elif outcome.outcome == "too_many":
        what = (f"namespace '{namespace}' already holds {outcome.detail} variables, the most it may hold "
                f"({limits.max_count}); '{key}' would be a new one")
    else:
        what = (f"namespace '{namespace}' holds {outcome.detail} bytes of variables; writing '{key}' would "
                f"exceed its limit of {limits.max_bytes} bytes")
    return f"{what} (limit set by the config key {config_key}); delete variables or raise the limit"
