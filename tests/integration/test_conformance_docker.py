"""The built-in Docker executor passes the executor conformance kit (cronium.core.testing)."""
from __future__ import annotations

import pytest
from cronium.core.testing import ExecutorConformance

pytestmark = pytest.mark.integration


class TestDockerExecutor(ExecutorConformance):
    """The installed plugins as they are; what is left is listed straight from the engine (not
    through the plugins' own reaping)."""

    @pytest.fixture
    def executor_leftovers(self, docker_leftovers):
        return docker_leftovers

    @pytest.fixture
    def executor_inspect(self, docker_inspect):
        return docker_inspect
