"""One `[jobs.NAME]` table of a deployment file -> a `JobDefinition`, every problem collected.

The file-specific parts are read here (TOML types, script files and inline scripts, durations,
secret references, schedules, retries, workflow edges); every rule a job spec obeys wherever it
comes from (limits, environment names, namespace, profile, input, egress) is `cronium.core.spec`'s,
applied to the spec the definition gives a worker.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import Config, parse_size
from ..model import (
    EXTENSION_TYPES,
    JOB_TYPES,
    RETRYABLE_STATUSES,
    SCRIPT_EXTENSIONS,
    Resources,
)
from ..spec import (
    Problems,
    check_env,
    check_input,
    check_executor,
    check_limits,
    check_placement,
    check_program,
)
from .cron import ScheduleError, parse_duration, parse_schedule
from .definition import (
    CONCURRENCY_POLICIES,
    EDGE_CONDITIONS,
    SECRET_ALLOW_HINT,
    SECRET_REF_RE,
    Edge,
    JobDefinition,
    RetryPolicy,
    secret_ref_refusal,
)

JOB_KEYS = ("description", "type", "script", "inline", "image", "command", "input", "env", "secret_env", "schedule",
            "timezone", "timeout", "resources", "profile", "namespace", "egress", "retries", "concurrency", "after",
            "plugins", "suspend", "executor", "placement")
RESOURCE_KEYS = ("memory", "cpus", "pids")
RETRY_KEYS = ("limit", "backoff", "factor", "max_backoff", "on")
EDGE_KEYS = ("job", "when")
#: Stands in for an execution id while a definition's spec is checked.
PLACEHOLDER_EXECUTION = "exec_0000000000000000"


def type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


@dataclass
class JobContext:
    """What a job table is read against: its deployment and where its problems and scripts go."""

    deployment: str
    namespace: str | None
    base_dir: Path
    config: Config
    scripts: dict[str, bytes]


class _Table:
    """Typed access to one TOML table; a value of the wrong type is a problem and reads as the default."""

    def __init__(self, table: Mapping[str, Any], problems: Problems):
        self.table, self.problems = table, problems

    def get(self, key: str, kinds: tuple[type, ...], what: str, default: Any = None) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, bool) and bool not in kinds:
            self.problems.add(key, f"expected {what}, found {value!r}")
            return default
        if not isinstance(value, kinds):
            self.problems.add(key, f"expected {what}, found {type_name(value)} {value!r}")
            return default
        return value


def parse_job(name: str, table: Mapping[str, Any], problems: Problems, ctx: JobContext) -> JobDefinition | None:
    """The definition of job `name`, or None when its table has problems (all added to `problems`,
    which is scoped to `jobs.NAME.`)."""
    before = len(problems)
    problems.unknown(table, JOB_KEYS)
    t = _Table(table, problems)
    job_type, script_name, body, image, command = _program(name, t, problems, ctx)
    program_ok = len(problems) == before
    env, secret_env = _env(t, problems, ctx.config["worker.secret_env_allow"])
    schedule, tz_name, suspend = _schedule(t, problems)
    plugins = _plugin_settings(t, problems)
    defn = JobDefinition(
        name=name, deployment=ctx.deployment, job_type=job_type, script_name=script_name,
        script_digest=hashlib.sha256(body).hexdigest() if body is not None else None,
        script_bytes=len(body) if body is not None else None, image=image, command=tuple(command or ()),
        input=table.get("input"), env=env, secret_env=secret_env, schedule=schedule, timezone=tz_name,
        timeout=_timeout(t, problems), resources=_resources(t, problems),
        profile=t.get("profile", (str,), "the name of a security profile"),
        namespace=t.get("namespace", (str,), "a namespace name") or ctx.namespace,
        egress=t.get("egress", (bool,), "true or false", False), retries=parse_retries(table.get("retries"), problems),
        concurrency=_concurrency(t, problems), after=parse_edges(table.get("after"), "after", problems),
        plugins=plugins, suspend=suspend, description=t.get("description", (str,), "a string", ""), source=problems.source,
        executor=t.get("executor", (str,), "the name of an executor such as \"swarm\""), placement=_placement(t, problems))
    _check_spec(defn, body, problems, ctx.config, program=program_ok)
    if len(problems) > before:
        return None
    if body is not None:
        ctx.scripts[defn.script_digest] = body
    return defn


def _placement(t: _Table, problems: Problems) -> tuple[str, ...]:
    """`placement = ["node.labels.gpu==true", ...]` (each constraint is checked with the spec)."""
    value = t.get("placement", (list,), "a list of constraints such as [\"node.labels.gpu==true\"]", [])
    if not all(isinstance(item, str) for item in value):
        problems.add("placement", f"expected a list of strings, found {value!r}")
        return ()
    return tuple(value)


def _check_spec(defn: JobDefinition, body: bytes | None, problems: Problems, config: Config, *, program: bool) -> None:
    """The rules every job spec obeys, on the spec this definition gives a worker."""
    placeholders = {SECRET_REF_RE.match(ref).group(1): "placeholder" for ref in defn.secret_env.values()}
    spec = defn.job_spec(body, execution_id=PLACEHOLDER_EXECUTION, input=defn.input, environ=placeholders)
    if program:
        check_program(spec, problems)
    check_limits(spec, config, problems)
    check_env(spec, problems)
    check_placement(spec, config, problems, deploying=True)
    check_executor(spec, config, problems)
    check_input(spec, problems)


# --- what runs: a script file, an inline script, or an image + command ------------------------------

def _program(name: str, t: _Table, problems: Problems, ctx: JobContext):
    """(job type, script name, script bytes, image, command) as far as they could be read."""
    job_type = t.get("type", (str,), "a string")
    if job_type is not None and job_type not in JOB_TYPES:
        problems.add("type", f"unknown job type {job_type!r}: use one of {', '.join(JOB_TYPES)}")
        job_type = None
    script_path = t.get("script", (str,), "a path to a script file, relative to the deployment file")
    inline = t.get("inline", (str,), "the script's source text")
    image = t.get("image", (str,), "an image name such as cronium/python:latest")
    command = _command(t.table.get("command"), problems)
    script_name = body = None
    if script_path is not None and inline is not None:
        problems.add("inline", "give either 'script' (a file) or 'inline' (the source), not both")
    elif script_path is not None:
        script_name, body = _read_script(ctx.base_dir, script_path, problems)
        if job_type is None and body is not None:
            job_type = EXTENSION_TYPES.get(Path(script_path).suffix.lower())
            if job_type is None:
                problems.add("type", f"cannot tell the job type from {script_path!r}: set type = "
                                     "\"python\", \"bash\" or \"node\"")
    elif inline is not None:
        body = inline.encode()
        if job_type is None:
            problems.add("type", "an inline script needs type = \"python\", \"bash\" or \"node\"")
        else:
            script_name = f"{name}{SCRIPT_EXTENSIONS.get(job_type, '')}"
    elif job_type is None and image is not None:
        job_type = "container"
    _check_program_keys(job_type, script_path, inline, command, body, problems)
    if body is not None and len(body) > ctx.config["deploy.max_script_bytes"]:
        problems.add("script" if script_path else "inline",
                     f"the script is {len(body)} bytes, above deploy.max_script_bytes "
                     f"({ctx.config['deploy.max_script_bytes']})")
    return job_type, script_name, body, image, command


def _check_program_keys(job_type, script_path, inline, command, body, problems: Problems) -> None:
    """Which keys go with which job type (the spec's own rules follow in `check_program`)."""
    if job_type == "container":
        if body is not None:
            problems.add("script" if script_path else "inline",
                         "a container job runs 'command'; use type python, bash or node for a script")
    elif job_type is not None:
        if body is None and script_path is None and inline is None:
            problems.add("", f"a {job_type} job needs 'script' (a file) or 'inline' (the source)")
        if command is not None:
            problems.add("command", f"a {job_type} job runs its script; 'command' is for type = \"container\"")
    elif script_path is None and inline is None:
        problems.add("", "nothing to run: give 'script', 'inline', or 'image' and 'command'")


def _command(value: Any, problems: Problems) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            problems.add("command", f"cannot split the command: {exc}")
            return None
    if isinstance(value, list) and value and all(isinstance(c, str) for c in value):
        return value
    problems.add("command", "expected a non-empty array of strings (or one string, split like a shell)")
    return None


def _read_script(base_dir: Path, script_path: str, problems: Problems) -> tuple[str | None, bytes | None]:
    """The script file, confined to the deployment file's folder: no absolute path, no `..`, and
    no symlink that resolves to a file outside the folder."""
    hint = "put the script in the deployment file's folder (or below it) and give its path relative to the file"
    if Path(script_path).is_absolute() or ".." in Path(script_path).parts:
        problems.add("script", f"script path {script_path!r} leaves the deployment's folder: give a path relative "
                               "to the deployment file, without '..'", hint=hint)
        return None, None
    file = base_dir / script_path
    try:
        real = file.resolve(strict=True)
        if not real.is_relative_to(base_dir.resolve()):
            problems.add("script", f"script {script_path!r} is a symlink to a file outside the deployment's folder",
                         hint=hint)
            return None, None
        return file.name, real.read_bytes()
    except FileNotFoundError:
        problems.add("script", f"script file {script_path!r} not found (looked at {file})")
    except IsADirectoryError:
        problems.add("script", f"{script_path!r} is a directory, not a script file")
    except PermissionError:
        problems.add("script", f"script file {script_path!r} is not readable (permission denied)")
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long …
        problems.add("script", f"cannot read script file {script_path!r}: {exc}")
    return None, None


# --- environment, schedule, limits --------------------------------------------------------------------

def _env(t: _Table, problems: Problems, allow: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Plain values (strings, numbers, booleans as text) and secret references (`env:VAR`, only to
    variables `allow` — `worker.secret_env_allow` — lists)."""
    env: dict[str, str] = {}
    for var, value in t.get("env", (dict,), "a table of NAME = \"value\"", {}).items():
        if isinstance(value, bool):
            env[var] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            env[var] = str(value)
        else:
            problems.add(f"env.{var}", f"expected a string, found {type_name(value)}")
    secret_env: dict[str, str] = {}
    for var, ref in t.get("secret_env", (dict,), "a table of NAME = \"env:VARIABLE\"", {}).items():
        if var in env:
            problems.add(f"secret_env.{var}", "also set in 'env': give each variable once")
        elif not isinstance(ref, str) or not SECRET_REF_RE.match(ref):
            problems.add(f"secret_env.{var}", "must be a reference such as \"env:MY_TOKEN\" (the variable is read on "
                                              "the worker when the job runs); secret values are never written in "
                                              "deployment files")
        elif (refusal := secret_ref_refusal(SECRET_REF_RE.match(ref).group(1), allow)) is not None:
            problems.add(f"secret_env.{var}", refusal, hint=SECRET_ALLOW_HINT)
        else:
            secret_env[var] = ref
            if SECRET_REF_RE.match(ref).group(1) not in os.environ:
                problems.warn(f"secret_env.{var}", f"refers to ${SECRET_REF_RE.match(ref).group(1)}, which is not "
                                                   "set here; it must be set on every worker")
    return env, secret_env


def _schedule(t: _Table, problems: Problems) -> tuple[str | None, str, bool]:
    schedule = t.get("schedule", (str,), "a cron expression such as \"*/5 * * * *\", a macro such as \"@hourly\", "
                                         "or \"@every 30s\"")
    tz_name = t.get("timezone", (str,), "an IANA time zone such as \"Europe/Berlin\"", "UTC")
    if schedule is not None:
        try:
            parse_schedule(schedule, "UTC")
        except ScheduleError as exc:
            problems.add("schedule", f"invalid schedule {schedule!r}: {exc}")
    try:
        parse_schedule("* * * * *", tz_name)
    except ScheduleError as exc:
        problems.add("timezone", str(exc))
    return schedule, tz_name, t.get("suspend", (bool,), "true or false", False)


def _timeout(t: _Table, problems: Problems) -> float | None:
    if "timeout" not in t.table:
        return None
    try:
        return parse_duration(t.table["timeout"])
    except ScheduleError as exc:
        problems.add("timeout", str(exc))
        return None


def _resources(t: _Table, problems: Problems) -> Resources:
    """Sizes are parsed here; their limits are the spec's rules."""
    table = t.get("resources", (dict,), "a table such as { memory = \"256m\", cpus = 0.5, pids = 128 }", {})
    problems.at("resources.").unknown(table, RESOURCE_KEYS)
    memory = None
    if "memory" in table:
        try:
            memory = parse_size(table["memory"])
        except ValueError:
            problems.add("resources.memory", f"not a size: {table['memory']!r} (use e.g. \"256m\" or \"1g\")")
    cpus = table.get("cpus")
    return Resources(memory=memory, cpus=float(cpus) if type(cpus) is int else cpus, pids=table.get("pids"))


def _concurrency(t: _Table, problems: Problems) -> str:
    policy = t.get("concurrency", (str,), "one of " + ", ".join(CONCURRENCY_POLICIES), "allow")
    if policy not in CONCURRENCY_POLICIES:
        problems.add("concurrency", f"unknown policy {policy!r}: use one of {', '.join(CONCURRENCY_POLICIES)}")
    return policy


def _plugin_settings(t: _Table, problems: Problems) -> dict[str, Any]:
    plugins = t.get("plugins", (dict,), "a table of [jobs.NAME.plugins.PLUGIN] tables", {})
    for plugin, settings in plugins.items():
        if not isinstance(settings, dict):
            problems.add(f"plugins.{plugin}", f"expected a table of settings, found {type_name(settings)}")
            continue
        try:
            json.dumps(settings)
        except (TypeError, ValueError):
            problems.add(f"plugins.{plugin}", "settings must be JSON-like (no TOML dates and times)")
    return plugins


# --- retries and workflow edges ---------------------------------------------------------------------

def parse_retries(value: Any, problems: Problems) -> RetryPolicy:
    if value is None:
        return RetryPolicy()
    if isinstance(value, int) and not isinstance(value, bool):
        table: dict[str, Any] = {"limit": value}
    elif isinstance(value, dict):
        table = value
        problems.at("retries.").unknown(table, RETRY_KEYS)
    else:
        problems.add("retries", "expected a number of retries, or a table { limit = 3, backoff = \"10s\", factor = 2 }")
        return RetryPolicy()
    limit = table.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 100:
        problems.add("retries.limit" if isinstance(value, dict) else "retries",
                     f"expected a whole number 0-100, found {limit!r}")
        limit = 0
    policy: dict[str, Any] = {"limit": limit}
    for sub in ("backoff", "max_backoff"):
        if sub in table:
            try:
                policy[sub] = parse_duration(table[sub])
            except ScheduleError as exc:
                problems.add(f"retries.{sub}", str(exc))
    factor = table.get("factor")
    if factor is not None:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 <= factor <= 10:
            problems.add("retries.factor", f"expected a number between 1 and 10, found {factor!r}")
        else:
            policy["factor"] = float(factor)
    if "on" in table:
        on = table["on"]
        if not isinstance(on, list) or not on or any(s not in RETRYABLE_STATUSES for s in on):
            problems.add("retries.on", f"expected a list of statuses out of {', '.join(RETRYABLE_STATUSES)}")
        else:
            policy["on"] = tuple(on)
    return RetryPolicy(**policy)


def parse_edges(value: Any, key: str, problems: Problems) -> tuple[Edge, ...]:
    """`after = "job"`, a table `{ job, when }`, or an array of those."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    edges = []
    for i, item in enumerate(items):
        item_key = f"{key}[{i}]" if isinstance(value, list) else key
        if isinstance(item, str):
            item = {"job": item}
        if not isinstance(item, dict):
            problems.add(item_key, "expected a job name or a table { job = \"NAME\", when = \"succeeded\" }")
            continue
        problems.at(f"{item_key}.").unknown(item, EDGE_KEYS)
        job, when = item.get("job"), item.get("when", "succeeded")
        if not isinstance(job, str) or not job:
            problems.add(f"{item_key}.job", "expected the name of a job of this deployment")
        elif when not in EDGE_CONDITIONS:
            problems.add(f"{item_key}.when", f"unknown condition {when!r}: use one of {', '.join(EDGE_CONDITIONS)}")
        else:
            edges.append(Edge(job=job, when=when))
    return tuple(edges)
