"""One job spec: validated by the same rules for `cronium run`, the Python API and deployment files,
then resolved once into the execution every hook sees.

- `check(spec, config, problems)` applies every rule and reports each problem through `problems`,
  keyed by the spec field in deployment-file words (`timeout`, `resources.memory`, `env.NAME`…).
  A `Problems` either raises the first problem as a `UsageError` (the CLI and the API: nothing was
  created, exit 2) or collects them all, each naming the file and the key (deployment files).
- `resolve(spec, config, owner=…)` validates, fills in the defaults (timeout, profile, namespace,
  image), clamps the resources of the profile to the configured limits, sets the deadline and the
  labels, and returns the effective spec with its `ExecutionInfo`; the rest of the run reads only
  those two.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import replace
from typing import Any, Mapping, NamedTuple

from .config import Config, parse_size
from .errors import ConfigError, UsageError
from .model import (
    ENV_NAME_RE,
    JOB_TYPES,
    NAMESPACE_RE,
    SCRIPT_EXTENSIONS,
    ExecutionInfo,
    JobSpec,
    Resources,
    new_execution_id,
)

#: Extra seconds beyond setup + timeout + stop grace before a reaper may remove an execution's
#: resources even though its owner still looks alive.
DEADLINE_SLACK = 300
#: Docker refuses smaller memory limits.
MIN_MEMORY = 6 * 1024 * 1024
#: Fewer processes than this cannot even start an interpreter with its helper.
MIN_PIDS = 8
SCRIPT_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")


def reserved_env(name: str) -> bool:
    """`CRONIUM_*` names belong to cronium (it sets the execution's id, token, API URL… and may set
    more later), except the helper knobs `CRONIUM_HELPER_*`, which are the job's own."""
    return name.startswith("CRONIUM_") and not name.startswith("CRONIUM_HELPER_")


class Problems:
    """Where validation reports what is wrong. `raise_first`: the first problem raises a
    `UsageError` (with its hint). Otherwise problems are collected as
    "<source>: key '<prefix><key>': <message>"; `at(prefix)` gives a view for a nested table."""

    def __init__(self, source: str = "", *, raise_first: bool = False, prefix: str = ""):
        self.source = source
        self.raise_first = raise_first
        self.prefix = prefix
        self.items: list[str] = []
        self.warnings: list[str] = []

    def at(self, prefix: str) -> "Problems":
        view = Problems(self.source, raise_first=self.raise_first, prefix=self.prefix + prefix)
        view.items, view.warnings = self.items, self.warnings
        return view

    def _where(self, key: str) -> str:
        full = (self.prefix + key).rstrip(".")
        return f"{self.source}: key '{full}'" if full else self.source

    def add(self, key: str, message: str, hint: str | None = None) -> None:
        if self.raise_first:
            raise UsageError(message, hint=hint)
        self.items.append(f"{self._where(key)}: {message}" + (f" ({hint})" if hint else ""))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self._where(key)}: {message}")

    def unknown(self, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
        """One problem per key of `table` that is not in `known` (with a did-you-mean)."""
        for key in table:
            if key not in known:
                import difflib

                match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f" (did you mean '{match[0]}'?)" if match else f" (known keys: {', '.join(known)})"
                self.add(key, "unknown key" + hint)

    def __len__(self) -> int:
        return len(self.items)


# --- the rules -------------------------------------------------------------------------------------

def check_program(spec: JobSpec, problems: Problems) -> None:
    """What runs: a script of a known type, or an image with a command."""
    if spec.job_type not in JOB_TYPES:
        problems.add("type", f"unknown job type {spec.job_type!r}", hint="use one of: " + ", ".join(JOB_TYPES))
    elif spec.job_type == "container":
        if not spec.image:
            problems.add("image", "a container job needs an image")
        if not spec.command and spec.script is None:
            problems.add("command", "a container job needs a command")
    elif spec.script is None:
        problems.add("script", f"a {spec.job_type} job needs a script")


def check_limits(spec: JobSpec, config: Config, problems: Problems) -> None:
    """Timeout and resources: well-formed and within the configured maximum."""
    timeout, maximum = spec.timeout, config["limits.max_timeout"]
    if timeout is not None:
        if not finite_number(timeout) or not timeout > 0:
            problems.add("timeout", f"invalid timeout {timeout!r}: give a positive, finite number of seconds")
        elif timeout > maximum:
            problems.add("timeout", f"timeout {timeout:g}s is above the maximum of {maximum:g}s (limits.max_timeout)",
                         hint="lower the timeout, or raise limits.max_timeout in config")
    r = spec.resources
    if r.memory is not None and (not _whole(r.memory) or r.memory < MIN_MEMORY):
        problems.add("resources.memory", f"memory limit {r.memory!r} bytes is too small: Docker needs at least 6m")
    if r.cpus is not None and (not finite_number(r.cpus) or not r.cpus > 0):
        problems.add("resources.cpus", f"invalid CPU limit {r.cpus!r}: give a positive, finite number such as 0.5")
    if r.pids is not None and (not _whole(r.pids) or r.pids < MIN_PIDS):
        problems.add("resources.pids", f"invalid pids limit {r.pids!r}: give a whole number of at least {MIN_PIDS}")


def finite_number(value: Any) -> bool:
    """An int or float that is neither NaN nor infinite (and not a boolean): the only numbers a
    spec, a deployment file or a duration may hold."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_env(spec: JobSpec, problems: Problems) -> None:
    """Environment variable names: valid shell names, none of cronium's own."""
    for table, names in (("env", spec.env), ("secret_env", spec.secret_env)):
        for name in names:
            if not ENV_NAME_RE.match(name):
                problems.add(f"{table}.{name}", f"invalid environment variable name {name!r}",
                             hint="use letters, digits and '_', not starting with a digit")
            elif reserved_env(name):
                problems.add(f"{table}.{name}", f"environment variable {name} is reserved: cronium sets the "
                                                "CRONIUM_* variables itself (CRONIUM_HELPER_* are the job's own)")


def check_placement(spec: JobSpec, config: Config, problems: Problems, *, deploying: bool = False) -> None:
    """Namespace, security profile and egress. `deploying`: the job runs on workers with their own
    config, so a refused egress is a warning here (the worker refuses it), not a problem."""
    if spec.namespace is not None and not valid_namespace(spec.namespace):
        problems.add("namespace", f"invalid namespace {spec.namespace!r}: use 1-64 letters, digits, '_', '.' or '-'")
    if spec.profile is not None:
        try:
            config.profile(spec.profile)
        except ConfigError as exc:
            if problems.raise_first:
                raise
            problems.add("profile", exc.message, hint=exc.hint)
    if spec.egress and not config["network.egress_allowed"]:
        message = "this job asks for network egress, but network.egress_allowed is false"
        if deploying:
            problems.warn("egress", message + " here; workers without it will refuse the job")
        else:
            problems.add("egress", message, hint="set network.egress_allowed = true in config to allow jobs egress")


#: An executor's name (`executor` in config, a deployment, `cronium run --executor`).
EXECUTOR_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: One placement constraint, as Docker Swarm writes them: `node.labels.gpu==true`, `node.role!=manager`.
CONSTRAINT_RE = re.compile(r"^(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9_.-]+)"
                           r"|engine\.labels\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*[A-Za-z0-9_.:/-]+$")
#: The executor that places jobs on this engine itself; placement means nothing to it.
LOCAL_EXECUTOR = "docker"


def check_executor(spec: JobSpec, config: Config, problems: Problems) -> None:
    """The executor's name and the placement constraints (for a cluster executor only)."""
    executor = spec.executor if spec.executor is not None else config["executor"]
    if not isinstance(executor, str) or not EXECUTOR_RE.match(executor):
        problems.add("executor", f"invalid executor name {executor!r}",
                     hint="use the name of an installed executor, e.g. \"docker\" or \"swarm\" (`cronium plugins`)")
        return
    for constraint in spec.placement:
        if not isinstance(constraint, str) or not CONSTRAINT_RE.match(constraint):
            problems.add("placement", f"invalid placement constraint {constraint!r}",
                         hint="write node.labels.NAME==VALUE, node.hostname==H, node.role!=manager, ...")
    if spec.placement and executor == LOCAL_EXECUTOR:
        problems.add("placement", f"placement constraints need a cluster executor, but this job runs on the "
                                  f"'{LOCAL_EXECUTOR}' executor (one engine, nothing to place)",
                     hint="add executor = \"swarm\" (or `--executor swarm`), or drop the placement")


def check_input(spec: JobSpec, problems: Problems) -> None:
    try:
        json.dumps(spec.input, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.add("input", f"the job input is not JSON-serialisable: {exc}",
                     hint="use strings, numbers, booleans, arrays and tables (no dates, no NaN)")


def check(spec: JobSpec, config: Config, problems: Problems, *, deploying: bool = False) -> None:
    """Every rule, in the order a user would fix them."""
    check_program(spec, problems)
    check_limits(spec, config, problems)
    check_env(spec, problems)
    check_placement(spec, config, problems, deploying=deploying)
    check_executor(spec, config, problems)
    check_input(spec, problems)


def valid_namespace(value: Any) -> bool:
    return isinstance(value, str) and NAMESPACE_RE.match(value) is not None


# --- resolving ---------------------------------------------------------------------------------------

class Resolved(NamedTuple):
    """The effective spec (defaults filled in) and the execution every hook sees."""

    spec: JobSpec
    execution: ExecutionInfo


def validate(spec: JobSpec, config: Config) -> None:
    """Raise the first problem of `spec` as a `UsageError` (exit 2): nothing has been created."""
    check(spec, config, Problems(raise_first=True))


def resolve(spec: JobSpec, config: Config, *, owner: str, installation: str = "",
            now: float | None = None) -> Resolved:
    """Validate (raise-first) and resolve once: defaults, profile, clamped resources, deadline,
    labels (with `cronium.installation` when `installation` is given)."""
    validate(spec, config)
    spec = replace(spec, timeout=float(spec.timeout if spec.timeout is not None else config["timeout"]),
                   profile=spec.profile or config["profile"], namespace=spec.namespace or config["namespace"])
    profile = config.profile(spec.profile)
    limits = config.section("limits")
    resources = Resources(
        memory=_clamp(spec.resources.memory, parse_size(profile["memory"]), parse_size(limits["max_memory"])),
        cpus=_clamp(spec.resources.cpus, profile["cpus"], limits["max_cpus"]),
        pids=_clamp(spec.resources.pids, profile["pids"], limits["max_pids"]),
    )
    execution_id = spec.execution_id or new_execution_id()
    now = time.time() if now is None else now
    deadline = now + config["sidecar.ready_timeout"] + spec.timeout + limits["stop_grace"] + DEADLINE_SLACK
    job_id = spec.job_id or "adhoc"
    labels = {"cronium.managed": "true", "cronium.execution": execution_id, "cronium.owner": owner,
              "cronium.attempt": str(spec.attempt), "cronium.deadline": str(int(deadline)), "cronium.job": job_id[:63]}
    if installation:
        labels["cronium.installation"] = installation
    execution = ExecutionInfo(
        execution_id=execution_id, job_id=job_id, job_name=spec.job_name or job_id, job_type=spec.job_type,
        namespace=spec.namespace, owner=owner, image=spec.image or config[f"images.{spec.job_type}"],
        profile=spec.profile, timeout=spec.timeout, created_at=now, deadline=deadline, labels=labels,
        resources=resources, egress=spec.egress, attempt=spec.attempt, plugin_settings=spec.plugin_settings,
        executor=spec.executor or config["executor"], placement=tuple(spec.placement))
    return Resolved(replace(spec, execution_id=execution_id, executor=execution.executor), execution)


def release_deadline(config: Config, execution: ExecutionInfo, released_at: float) -> float:
    """When a released job's resources may be reaped even though its owner looks alive: its
    timeout, the stop grace and DEADLINE_SLACK after the release (written to the record)."""
    return released_at + execution.timeout + config["limits.stop_grace"] + DEADLINE_SLACK


def _clamp(value: float | int | None, default: Any, maximum: float | int) -> Any:
    return min(default if value is None else value, maximum)


def script_file_name(spec: JobSpec) -> str:
    """The script's file name inside the container: the given name, sanitised, or `script.<ext>`."""
    name = SCRIPT_NAME_RE.sub("_", spec.script_name or "") or f"script{SCRIPT_EXTENSIONS.get(spec.job_type, '')}"
    return name[:100]
