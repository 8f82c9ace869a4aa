"""Records every cronium notification hook as a JSON line in $CRONIUM_RECORDER_FILE.

Inactive unless that variable is set. With CRONIUM_RECORDER_RAISE=<hook name> it raises in that
hook, so tests can check that a plugin failing in any phase leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import json
import os

from cronium.core import hookimpl


def _payload(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _payload(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _payload(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_payload(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _record(hook: str, **kwargs) -> None:
    path = os.environ.get("CRONIUM_RECORDER_FILE")
    if not path:
        return
    entry = {"hook": hook, "args": {k: _payload(v) for k, v in kwargs.items() if k != "runtime"},
             "repr": repr(kwargs)}
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    if os.environ.get("CRONIUM_RECORDER_RAISE") == hook:
        raise RuntimeError(f"recorder was told to fail in {hook}")


@hookimpl
def startup(runtime):
    _record("startup")


@hookimpl
def token_issued(execution, claims):
    _record("token_issued", execution=execution, claims=claims)


@hookimpl
def network_created(execution, network):
    _record("network_created", execution=execution, network=network)


@hookimpl
def container_options(execution, role):
    _record("container_options", execution=execution, role=role)
    return None


@hookimpl
def sidecar_started(execution, sidecar):
    _record("sidecar_started", execution=execution, sidecar=sidecar)


@hookimpl
def log_sinks(execution):
    _record("log_sinks", execution=execution)
    return None


@hookimpl
def job_started(execution, container_id):
    _record("job_started", execution=execution, container_id=container_id)


@hookimpl
def job_finished(execution, result):
    _record("job_finished", execution=execution, result=result)


@hookimpl
def cleanup(execution, result):
    _record("cleanup", execution=execution, result=result)
