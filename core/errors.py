"""Every error cronium raises on purpose, in one place.

Errors carry a message a user can act on (what was wrong and how to fix it). They are translated
to exit codes only at the edge (the CLI); `exit_code` is that translation.
"""
from __future__ import annotations


class CroniumError(Exception):
    """Base class: a problem cronium explains to the user (never a traceback without --debug)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message


class UsageError(CroniumError):
    """Bad input on the command line or in a job spec: nothing was created."""

    exit_code = 2


class PortInUse(UsageError):
    """A server (the dashboard) could not listen on its address: the port is taken or not allowed."""


class ConfigError(UsageError):
    """A configuration file, environment variable or flag has an unknown key or a bad value."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 expected: str | None = None, found: object = None, hint: str | None = None):
        parts = []
        if source:
            parts.append(source)
        if key:
            parts.append(f"key '{key}'")
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if expected is not None:
            text += f" (expected {expected}, found {found!r})"
        super().__init__(text, hint=hint)
        self.source = source
        self.key = key
        self.expected = expected
        self.found = found


class ConfigInvalid(ConfigError):
    """Several configuration values are wrong at once; `problems` has one ConfigError each (source,
    key, what was expected, the fix), so a user fixes them all in one go."""

    def __init__(self, problems: list[ConfigError]):
        lines = "\n  ".join(str(p).replace("\n", "\n  ") for p in problems)
        UsageError.__init__(self, f"configuration rejected, {len(problems)} problems:\n  {lines}",
                            hint="fix each key named above (nothing was run)")
        self.problems = problems
        self.source = self.key = self.expected = self.found = None


class PluginLoadError(CroniumError):
    """A plugin entry point, or a file of the plugins directory (`path`), could not be imported."""

    def __init__(self, entry_point: str, distribution: str, reason: str, *, path: str | None = None):
        name = entry_point.split('=')[0].strip()
        if path is None:
            message = f"plugin entry point '{entry_point}' from distribution '{distribution}' failed to load: {reason}"
            hint = f"fix or uninstall '{distribution}', or disable it with CRONIUM_DISABLE_PLUGINS={name}"
        else:
            message = f"plugin file '{path}' of the plugins directory failed to load: {reason}"
            hint = f"fix or remove the file, or disable it with CRONIUM_DISABLE_PLUGINS={name}"
        super().__init__(message, hint=hint)
        self.entry_point = entry_point
        self.distribution = distribution
        self.reason = reason
        self.path = path


class PluginValidationError(CroniumError):
    """A plugin implements a hook that does not exist (misspelled) or with wrong arguments."""


class HookFailures(CroniumError):
    """One or more plugins raised in a notification or cleanup hook; all were still called."""

    def __init__(self, hook: str, failures: list[tuple[str, BaseException]]):
        details = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures)
        super().__init__(f"hook '{hook}' failed in {len(failures)} plugin(s): {details}")
        self.hook = hook
        self.failures = failures


class MissingProvider(CroniumError):
    """No enabled plugin supplied the result of a provider hook."""

    def __init__(self, hook: str):
        super().__init__(
            f"no plugin provides hook '{hook}'",
            hint="a built-in plugin may be disabled in config or CRONIUM_DISABLE_PLUGINS; run `cronium plugins`",
        )
        self.hook = hook


class EngineUnavailable(CroniumError):
    """The Docker engine does not answer."""

    def __init__(self, detail: str):
        super().__init__(
            f"the Docker engine is not reachable ({detail})",
            hint="start it with `make setup` (or `dockerd &`), or point docker.url / DOCKER_HOST at a running engine",
        )


class StoreUnavailable(CroniumError):
    """Redis does not answer."""

    def __init__(self, detail: str, *, hint: str | None = None):
        super().__init__(
            f"the Redis store is not reachable ({detail})",
            hint=hint or "start the managed Redis with `cronium services start`, or set redis.url to a running server",
        )


class StoreFull(StoreUnavailable):
    """Redis refused a write because it reached its `maxmemory` (policy `noeviction`). A kind of
    `StoreUnavailable`, so a job's record is spooled and written once there is room again."""

    def __init__(self, key: str | None):
        CroniumError.__init__(
            self,
            f"the Redis store is full: it refused to write {key or 'a key'} (maxmemory reached, nothing is evicted)",
            hint="free space with `cronium prune` (finished executions and their logs), or raise the server's "
                 "maxmemory (the managed Redis: services.redis_maxmemory, applied when `cronium services stop` and "
                 "`cronium services start` re-create it)",
        )
        self.key = key


class QuotaExceeded(CroniumError):
    """A write would exceed a quota (the message names the limit and the config key that sets it)."""


class VersionConflict(CroniumError):
    """A compare-and-set write named another version than the current one; nothing was written."""


class ImageMissing(CroniumError):
    """A required image is not present on the engine."""

    def __init__(self, image: str, role: str):
        super().__init__(
            f"the {role} image '{image}' is not present on the Docker engine",
            hint="build the images with `cronium images build` (no registry is used)",
        )
        self.image = image


class PhaseError(CroniumError):
    """A lifecycle phase failed before or around the job; the execution ends with status `error`."""

    def __init__(self, phase: str, reason: str, *, hint: str | None = None):
        super().__init__(f"{phase} phase failed: {reason}", hint=hint)
        self.phase = phase
        self.reason = reason


class SecurityNotApplied(PhaseError):
    """A security setting could not be applied: the job refuses to start instead of running without it."""

    def __init__(self, setting: str, reason: str):
        super().__init__("security", f"could not apply {setting}: {reason}",
                         hint="fix the profile in config, or choose another with --profile")


class NotFound(CroniumError):
    """A named thing (execution, variable, deployment…) does not exist."""

    exit_code = 1


class Cancelled(CroniumError):
    """The run was cancelled (SIGINT/SIGTERM or `cronium cancel`)."""

    exit_code = 130


class DeploymentInvalid(UsageError):
    """A deployment file has problems; each names the file and the key. Nothing was registered."""

    def __init__(self, problems: list[str]):
        count = len(problems)
        super().__init__(f"deployment rejected, {count} problem{'s' if count != 1 else ''}:\n  " + "\n  ".join(problems),
                         hint="fix the keys named above and deploy again (nothing was registered)")
        self.problems = problems


class SecretUnavailable(CroniumError):
    """A secret referenced by a deployment (e.g. `env:MY_TOKEN`) is not available on this worker."""


class UidRangeFull(CroniumError):
    """`security.per_execution_uid`: every uid of `security.uid_range` is held by a running execution."""

    def __init__(self, low: int, high: int):
        super().__init__(f"no free uid: all {high - low + 1} uids of security.uid_range {low}-{high} are held by "
                         "running executions", hint="widen security.uid_range, or run fewer jobs at once "
                                                   "(`cronium gc` frees the uids of crashed runs)")


class AgentUnavailable(CroniumError):
    """No local agent answers on the socket (none runs, or it could not be started)."""


class AgentRefused(CroniumError):
    """The local agent refused this client (another user, or a client of another configuration)."""


class AgentLost(CroniumError):
    """The local agent ended (crashed, was killed) while it ran this client's job; the reaper
    removes what the job left, as for any dead owner."""

    exit_code = 125
