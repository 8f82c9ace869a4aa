"""The minimal executor of docs/plugins.md, taken verbatim from the docs, passes the executor
conformance kit in place of the built-in `docker_executor`."""
from __future__ import annotations

import json
import sys

import pytest
from cronium.core.testing import ExecutorConformance
from documented import documented_executor_source

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def documented_executor(tmp_path_factory):
    """The docs' `my_executor.py` as an importable module (also for the kit's crashed process)."""
    folder = tmp_path_factory.mktemp("documented")
    (folder / "my_executor.py").write_text(documented_executor_source())
    sys.path.insert(0, str(folder))
    yield "my_executor"
    sys.path.remove(str(folder))
    sys.modules.pop("my_executor", None)


class TestDocumentedExecutor(ExecutorConformance):
    @pytest.fixture
    def cronium_overrides(self):
        return {"plugins.disabled": ["docker_executor"]}

    @pytest.fixture
    def executor_plugins(self, documented_executor):
        return {"my_executor": documented_executor}

    @pytest.fixture
    def executor_inspect(self, docker_inspect):
        return docker_inspect

    @pytest.fixture
    def executor_leftovers(self, docker_leftovers):
        return docker_leftovers

    def test_the_documented_executor_is_the_one_that_runs(self, probe, cronium_runtime, cronium_run, docker_inspect):
        assert cronium_runtime.pm.get_plugin("docker_executor") is None
        seen = []
        probe.on_job_started.append(lambda execution: seen.extend(json.loads(docker_inspect(execution.execution_id))))
        result = cronium_run("print('hi')")
        assert result.status == "succeeded", result
        assert [c["Config"]["Labels"].get("my-executor") for c in seen if "cronium-job-" in c["Name"]] == ["job"]
