"""cronium's core: hookspecs, plugin manager, job model, lifecycle driver, config, CLI.

Public API for plugins and embedding:

    from cronium.core import hookimpl, JobSpec, run_job

Heavy dependencies (docker, redis, jwt) are imported only when a job actually runs.
"""
from __future__ import annotations

from .model import ExecutionInfo, JobResult, JobSpec, Resources, Secret

__version__ = "0.1.0"
__all__ = ["hookimpl", "JobSpec", "JobResult", "Resources", "Secret", "ExecutionInfo", "run_job", "Orchestrator",
           "Runtime", "__version__"]


def __getattr__(name: str):
    # Lazy: importing cronium.core must not import docker/redis/pluggy (CLI start-up time; the
    # client side of `cronium run` on the agent path imports none of them).
    if name == "hookimpl":
        from .plugins import hookimpl
        return hookimpl
    if name in ("run_job", "Orchestrator", "Cancellation"):
        from . import lifecycle
        return getattr(lifecycle, name)
    if name == "Runtime":
        from .runtime import Runtime
        return Runtime
    raise AttributeError(name)
