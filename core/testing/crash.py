"""The orchestrating process the conformance kit kills: `python -m cronium.core.testing.crash`.

Reads `{"flags": config flags, "plugins": {name: import path}, "script": python job}` as JSON on
stdin, runs the job through the lifecycle with those plugins registered, and prints the execution
id on stdout as soon as the job runs — then the kit SIGKILLs this process mid-job.
"""
from __future__ import annotations

import json
import sys
import tempfile

from ..config import load_config
from ..lifecycle import Orchestrator
from ..model import JobSpec
from ..plugins import hookimpl
from ..runtime import Runtime
from .conformance import load_object


class _Announce:
    @hookimpl
    def job_started(self, execution):
        print(execution.execution_id, flush=True)


def main() -> None:
    request = json.load(sys.stdin)
    config = load_config(flags=request["flags"], use_user_config=False, environ={}, cwd=tempfile.gettempdir())
    runtime = Runtime(config)
    for name, path in request["plugins"].items():
        runtime.pm.register(load_object(path), name=name)
    runtime.pm.register(_Announce(), name="announce")
    Orchestrator(runtime).run(JobSpec(job_type="python", script=request["script"].encode(), script_name="job.py"))


if __name__ == "__main__":
    main()
