"""Hook calls go through pluggy: third-party wrappers of both styles run around notifications,
providers and contributions, while notifications still call every implementation and report every
failure (cronium.core.plugins: notify, contributions, Hooks)."""
from __future__ import annotations

import functools
import inspect
import tomllib
import types
from importlib import metadata
from pathlib import Path

import pluggy
import pytest
from cronium.core import docgen, hookimpl, hookspecs
from cronium.core.errors import HookFailures, MissingProvider
from cronium.core.plugins import (
    CroniumPluginManager,
    Hooks,
    contributions,
    notify,
    notify_or_raise,
)

ROOT = Path(__file__).resolve().parents[3]


def spec_kwargs(pm, hook: str, **values):
    """Every argument the hookspec declares (None unless given)."""
    return {name: values.get(name) for name in getattr(pm.hook, hook).spec.argnames}


class Impl:
    """A plain `job_finished` implementation that logs its name and may raise."""

    def __init__(self, log: list, name: str, fail: bool = False):
        self.log, self.name, self.fail = log, name, fail

    @hookimpl
    def job_finished(self, execution, result):
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} is broken")


class NewStyleWrapper:
    """A third-party `wrapper=True` on a notification: logs before, after, and what it saw."""

    def __init__(self, log: list):
        self.log = log
        self.seen: list = []

    @hookimpl(wrapper=True)
    def job_finished(self, execution, result):
        self.log.append(f"before {execution}")
        try:
            outcome = yield
        except HookFailures as exc:
            self.seen.append(exc)
            self.log.append(f"after {execution} (failed)")
            raise
        self.seen.append(outcome)
        self.log.append(f"after {execution}")
        return outcome


class OldStyleWrapper:
    """A third-party `hookwrapper=True` on a notification: records each pluggy outcome."""

    def __init__(self, log: list):
        self.log = log
        self.outcomes: list[pluggy.Result] = []

    @hookimpl(hookwrapper=True)
    def job_finished(self, execution, result):
        self.log.append("old before")
        outcome = yield
        self.outcomes.append(outcome)
        self.log.append("old after")


def job_finished(pm, execution="EX"):
    return notify(pm, "job_finished", **spec_kwargs(pm, "job_finished", execution=execution, result="RES"))


# --- notifications -------------------------------------------------------------------------------

def test_new_style_wrapper_runs_around_every_notification():
    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "a"), name="a")
    pm.register(Impl(log, "b"), name="b")
    wrapper = NewStyleWrapper(log)
    pm.register(wrapper, name="timing")
    assert job_finished(pm, "EX1") == [] and job_finished(pm, "EX2") == []
    assert log == ["before EX1", "b", "a", "after EX1", "before EX2", "b", "a", "after EX2"]
    assert wrapper.seen == [[], []]  # a notification's implementations return nothing


def test_new_style_wrapper_sees_one_hook_failures_after_every_implementation_ran():
    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "broken-a", fail=True), name="broken-a")
    pm.register(Impl(log, "ok"), name="ok")
    pm.register(Impl(log, "broken-b", fail=True), name="broken-b")
    wrapper = NewStyleWrapper(log)
    pm.register(wrapper, name="timing")
    failures = job_finished(pm)
    assert log == ["before EX", "broken-b", "ok", "broken-a", "after EX (failed)"]
    (seen,) = wrapper.seen
    assert isinstance(seen, HookFailures) and seen.hook == "job_finished"
    assert [name for name, _ in seen.failures] == ["broken-b", "broken-a"]
    # notify reports the implementations' own exceptions, not the summary the wrapper re-raised
    assert [(name, str(exc)) for name, exc in failures] == \
        [("broken-b", "broken-b is broken"), ("broken-a", "broken-a is broken")]


def test_a_wrapper_that_swallows_the_failure_cannot_hide_it():
    class Swallower:
        swallowed: list = []

        @hookimpl(wrapper=True)
        def job_finished(self):
            try:
                return (yield)
            except HookFailures as exc:
                Swallower.swallowed.append(exc)
                return []

    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "broken", fail=True), name="broken")
    pm.register(Swallower(), name="swallower")
    assert [name for name, _ in job_finished(pm)] == ["broken"]
    assert [[name for name, _ in exc.failures] for exc in Swallower.swallowed] == [["broken"]]


def test_old_style_hookwrapper_runs_around_a_notification_and_sees_the_outcome():
    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "broken", fail=True), name="broken")
    pm.register(Impl(log, "ok"), name="ok")
    wrapper = OldStyleWrapper(log)
    pm.register(wrapper, name="old")
    failures = job_finished(pm)
    assert log == ["old before", "ok", "broken", "old after"]
    assert [name for name, _ in failures] == ["broken"]
    (outcome,) = wrapper.outcomes
    assert isinstance(outcome.exception, HookFailures) and outcome.exception.failures == failures
    pm.unregister(name="broken")
    assert job_finished(pm) == []
    assert wrapper.outcomes[1].exception is None and wrapper.outcomes[1].get_result() == []


def test_notify_calls_all_and_reports_all_failures_when_two_raise_with_wrappers_of_both_styles():
    pm, log = CroniumPluginManager(), []
    for name, fail in (("first", False), ("broken-a", True), ("middle", False), ("broken-b", True)):
        pm.register(Impl(log, name, fail), name=name)
    new, old = NewStyleWrapper(log), OldStyleWrapper(log)
    pm.register(new, name="new")
    pm.register(old, name="old")
    with pytest.raises(HookFailures) as info:
        notify_or_raise(pm, "job_finished", **spec_kwargs(pm, "job_finished", execution="EX"))
    assert sorted(log[2:-2]) == ["broken-a", "broken-b", "first", "middle"]
    assert log[:2] == ["old before", "before EX"] and log[-2:] == ["after EX (failed)", "old after"]
    assert {name for name, _ in info.value.failures} == {"broken-a", "broken-b"}
    assert {name for name, _ in new.seen[0].failures} == {"broken-a", "broken-b"}
    assert old.outcomes[0].exception is new.seen[0]  # the new-style wrapper re-raised it


def test_a_wrapper_failing_before_its_yield_is_reported_and_skipped():
    class BrokenSetup:
        @hookimpl(wrapper=True)
        def job_finished(self):
            raise ValueError("setup failed")
            yield  # unreachable: makes this a generator, as pluggy requires

    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "a"), name="a")
    pm.register(BrokenSetup(), name="broken-setup")
    outer = NewStyleWrapper(log)
    pm.register(outer, name="outer")
    failures = job_finished(pm)
    assert log == ["before EX", "a", "after EX (failed)"]
    assert [(name, str(exc)) for name, exc in failures] == [("broken-setup", "setup failed")]


def test_a_wrapper_failing_after_its_yield_is_reported_under_its_name():
    class BrokenTeardown:
        @hookimpl(wrapper=True)
        def job_finished(self):
            yield
            raise ValueError("teardown failed")

    class Outer:
        seen = None

        @hookimpl(wrapper=True)
        def job_finished(self):
            try:
                return (yield)
            except Exception as exc:
                Outer.seen = exc
                raise

    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "a"), name="a")
    pm.register(BrokenTeardown(), name="broken-teardown")
    pm.register(Outer(), name="outer")
    failures = job_finished(pm)
    assert log == ["a"]
    assert [(name, str(exc)) for name, exc in failures] == [("broken-teardown", "teardown failed")]
    assert Outer.seen is failures[0][1]  # the outer wrapper saw that exception, as pluggy shows it


def test_outside_notify_pluggy_semantics_are_unchanged():
    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "ok"), name="ok")
    pm.register(Impl(log, "broken", fail=True), name="broken")
    with pytest.raises(RuntimeError, match="broken is broken"):
        pm.hook.job_finished(**spec_kwargs(pm, "job_finished"))
    assert log == ["broken"]  # pluggy stops at the first exception


def test_nested_notifications_keep_their_own_failures():
    class Nests:
        def __init__(self, pm):
            self.pm, self.inner = pm, None

        @hookimpl
        def job_finished(self, execution):
            self.inner = notify(self.pm, "cleanup", **spec_kwargs(self.pm, "cleanup"))
            raise RuntimeError("outer broken")

    class CleanupFails:
        @hookimpl
        def cleanup(self):
            raise RuntimeError("inner broken")

    pm = CroniumPluginManager()
    nests = Nests(pm)
    pm.register(nests, name="nests")
    pm.register(CleanupFails(), name="cleanup-fails")
    assert [(n, str(e)) for n, e in job_finished(pm)] == [("nests", "outer broken")]
    assert [(n, str(e)) for n, e in nests.inner] == [("cleanup-fails", "inner broken")]


# --- providers -----------------------------------------------------------------------------------

class TokenProvider:
    def __init__(self, value):
        self.value = value

    @hookimpl
    def issue_token(self, execution, runtime):
        return self.value


def test_new_style_wrapper_on_a_firstresult_provider_observes_and_replaces_the_result():
    class Rewrap:
        def __init__(self):
            self.seen = []

        @hookimpl(wrapper=True)
        def issue_token(self, execution):
            token = yield
            self.seen.append((execution, token))
            return f"wrapped({token})" if execution == "replace" else token

    pm = CroniumPluginManager()
    pm.register(TokenProvider("the-token"), name="token")
    wrapper = Rewrap()
    pm.register(wrapper, name="rewrap")
    hooks = Hooks(pm)
    assert hooks.issue_token(execution="keep", runtime=None) == "the-token"
    assert hooks.issue_token(execution="replace", runtime=None) == "wrapped(the-token)"
    assert wrapper.seen == [("keep", "the-token"), ("replace", "the-token")]


def test_old_style_wrapper_on_a_provider_can_answer_when_nobody_does():
    class Fallback:
        @hookimpl(hookwrapper=True)
        def issue_token(self):
            outcome = yield
            if outcome.get_result() is None:
                outcome.force_result("fallback-token")

    pm = CroniumPluginManager()
    pm.register(TokenProvider(None), name="decliner")
    with pytest.raises(MissingProvider):
        Hooks(pm).issue_token(execution=None, runtime=None)
    pm.register(Fallback(), name="fallback")
    assert Hooks(pm).issue_token(execution=None, runtime=None) == "fallback-token"


# --- contributions -------------------------------------------------------------------------------

class Sinks:
    def __init__(self, value):
        self.value = value

    @hookimpl
    def log_sinks(self, execution, runtime):
        return self.value


class SinkWrapper:
    """A wrapper on `log_sinks`: its generator must not become a sink; it may add one."""

    def __init__(self):
        self.seen = []

    @hookimpl(wrapper=True)
    def log_sinks(self, execution):
        results = yield
        self.seen.append(list(results))
        return results + ["audit-sink"] if execution == "add" else results


def test_wrapper_on_log_sinks_is_not_a_sink_and_the_real_sinks_are_returned():
    pm = CroniumPluginManager()
    pm.register(Sinks(["file", "redis"]), name="builtin-logs")
    pm.register(Sinks(None), name="declines")
    pm.register(Sinks("terminal"), name="third-party")
    wrapper = SinkWrapper()
    pm.register(wrapper, name="sink-wrapper")
    got = contributions(pm, "log_sinks", **spec_kwargs(pm, "log_sinks", execution="plain"))
    assert got == ["terminal", "file", "redis"]
    assert wrapper.seen == [["terminal", ["file", "redis"]]]  # one item per plugin, before flattening
    assert Hooks(pm).log_sinks(execution="add", runtime=None) == ["terminal", "file", "redis", "audit-sink"]


def test_old_style_wrapper_on_log_sinks_is_not_a_sink():
    class OldSinkWrapper:
        @hookimpl(hookwrapper=True)
        def log_sinks(self):
            yield

    pm = CroniumPluginManager()
    pm.register(Sinks("file"), name="logs")
    pm.register(OldSinkWrapper(), name="old")
    assert contributions(pm, "log_sinks", **spec_kwargs(pm, "log_sinks")) == ["file"]


def test_a_failing_contribution_names_its_plugin_and_wrappers_see_it():
    class Broken:
        @hookimpl
        def container_options(self):
            raise ValueError("no options today")

    class Watcher:
        seen = None

        @hookimpl(wrapper=True)
        def container_options(self):
            try:
                return (yield)
            except HookFailures as exc:
                Watcher.seen = exc
                raise

    pm = CroniumPluginManager()
    pm.register(Broken(), name="broken-options")
    pm.register(Watcher(), name="watcher")
    with pytest.raises(HookFailures) as info:
        Hooks(pm).container_options(execution=None, role="job", runtime=None)
    assert info.value is Watcher.seen and info.value.failures[0][0] == "broken-options"
    assert "no options today" in str(info.value)


def test_a_failing_contribution_wrapper_names_its_plugin():
    class BrokenWrapper:
        @hookimpl(wrapper=True)
        def log_sinks(self):
            yield
            raise ValueError("wrapper broke")

    pm = CroniumPluginManager()
    pm.register(Sinks("file"), name="logs")
    pm.register(BrokenWrapper(), name="broken-wrapper")
    with pytest.raises(HookFailures) as info:
        contributions(pm, "log_sinks", **spec_kwargs(pm, "log_sinks"))
    assert [name for name, _ in info.value.failures] == ["broken-wrapper"]


# --- the typed facade ----------------------------------------------------------------------------

def facade_methods() -> dict[str, object]:
    return {name: fn for name, fn in vars(Hooks).items() if inspect.isfunction(fn) and not name.startswith("_")}


def test_facade_has_one_method_per_hookspec_with_the_same_argument_names():
    specs = {name: fn for name, fn in vars(hookspecs).items() if hasattr(fn, "cronium_spec")}
    methods = facade_methods()
    assert list(methods) == list(specs)  # same hooks, same (lifecycle) order
    for name, method in methods.items():
        params = list(inspect.signature(method).parameters.values())[1:]
        assert [p.name for p in params] == list(inspect.signature(specs[name]).parameters), name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name


def recording_plugin(hook: str, calls: list, answer: object) -> types.ModuleType:
    """A plugin module implementing `hook` with the hookspec's own arguments; it records each call."""
    spec = getattr(hookspecs, hook)

    @functools.wraps(spec)  # pluggy reads the argument names through __wrapped__
    def implementation(*args):
        calls.append(dict(zip(inspect.signature(spec).parameters, args, strict=True)))
        return answer

    plugin = types.ModuleType(f"plugin_of_{hook}")
    setattr(plugin, hook, hookimpl(implementation))
    return plugin


def test_each_facade_method_calls_its_own_hook_with_the_semantics_of_its_kind():
    kinds = set()
    for doc in docgen.hook_docs():
        calls, answer = [], object()
        pm = CroniumPluginManager()
        pm.register(recording_plugin(doc.name, calls, answer), name="plugin")
        kwargs = {arg: f"{doc.name}.{arg}" for arg in inspect.signature(getattr(hookspecs, doc.name)).parameters}
        got = getattr(Hooks(pm), doc.name)(**kwargs)
        assert calls == [kwargs], doc.name
        expected = {"provider": answer, "contribution": [answer], "notification": []}[doc.kind]
        assert got == expected, f"{doc.name} is a {doc.kind}"
        kinds.add(doc.kind)
    assert kinds == {"provider", "contribution", "notification"}


def test_strict_facade_raises_notification_failures():
    pm, log = CroniumPluginManager(), []
    pm.register(Impl(log, "broken", fail=True), name="broken")
    hooks = Hooks(pm)
    assert [name for name, _ in hooks.job_finished(execution=None, result=None, runtime=None)] == ["broken"]
    with pytest.raises(HookFailures) as info:
        hooks.strict.job_finished(execution=None, result=None, runtime=None)
    assert info.value.hook == "job_finished" and info.value.failures[0][0] == "broken"
    assert hooks.strict is hooks.strict and hooks.strict.pm is pm


def test_runtime_hooks_is_the_facade_over_its_plugin_manager(make_config):
    from cronium.core.runtime import Runtime

    pm = CroniumPluginManager()
    rt = Runtime(make_config(), pm=pm)
    assert isinstance(rt.hooks, Hooks) and rt.hooks.pm is pm and rt.hooks is rt.hooks


def test_misspelled_facade_hook_fails_before_any_plugin_is_called():
    hooks = Hooks(CroniumPluginManager())
    with pytest.raises(AttributeError):
        hooks.job_finshed  # noqa: B018 - the misspelling is the point
    with pytest.raises(TypeError):
        hooks.job_finished(execution=None, outcome=None, runtime=None)


# --- what the dispatch relies on -----------------------------------------------------------------

def test_pluggy_is_pinned_to_the_major_version_whose_hookimpl_function_is_replaced():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("pluggy")]
    assert pin.replace(" ", "").startswith("pluggy>=1.5,<2")
    assert metadata.version("pluggy").split(".")[0] == "1"
    pm = CroniumPluginManager()
    plugin = Impl([], "x")
    pm.register(plugin, name="x")
    (impl,) = pm.hook.job_finished.get_hookimpls()
    assert impl.function != plugin.job_finished  # guarded: what pluggy calls is the guard
