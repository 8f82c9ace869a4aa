"""The executor documented in docs/plugins.md implements the documented interface (its run through
the conformance kit is tests/integration/test_documented_executor.py)."""
from __future__ import annotations

import inspect
import types

from cronium.core.executor import JobHandle
from cronium.core.plugins import create_plugin_manager
from documented import documented_executor_source


def test_the_documented_executor_registers_and_its_handle_has_every_method():
    module = types.ModuleType("my_executor")
    exec(compile(documented_executor_source(), "my_executor.py", "exec"), module.__dict__)
    pm = create_plugin_manager(entry_points=[])
    pm.register(module, name="my_executor")  # hook names and arguments are checked against the hookspecs
    assert {h.name for h in pm.get_hookcallers(module)} == {"start_job", "reap_orphans"}
    protocol = {name for name, _ in inspect.getmembers(JobHandle, inspect.isfunction) if not name.startswith("_")}
    assert protocol == {"start", "release", "chunks", "exit_status", "stop"}
    assert protocol <= set(vars(module.Handle))
