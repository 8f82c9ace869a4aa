"""Deployments: TOML files that declare jobs, validated here and registered in Redis.

A deployment file holds a `[deployment]` table (name, default namespace) and one `[jobs.NAME]`
table per job (see `docs/queue.md` for every key). `load_deployment` reads and validates a file
and collects *every* problem, each naming the file and the key; `DeploymentRegistry` stores a
valid deployment in Redis — the job definitions and the script contents, so that workers on
other hosts can run the jobs — and replaces the previous version of the same deployment
atomically. Secrets are stored only as references (`env:VAR`), resolved on the worker when the
job runs.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, Mapping

from ..config import Config, parse_size
from ..errors import ConfigError, DeploymentInvalid, UsageError
from ..model import EXTENSION_TYPES, JOB_TYPES, RETRYABLE_STATUSES, Resources
from .cron import ScheduleError, parse_duration, parse_schedule
from .definition import (
    CONCURRENCY_POLICIES,
    EDGE_CONDITIONS,
    ENV_NAME_RE,
    NAME_RE,
    SCRIPT_EXTENSIONS,
    SECRET_REF_RE,
    Deployment,
    Edge,
    JobDefinition,
    RetryPolicy,
)

TOP_KEYS = ("deployment", "jobs")
DEPLOYMENT_KEYS = ("name", "namespace", "description")
JOB_KEYS = ("description", "type", "script", "inline", "image", "command", "input", "env", "secret_env", "schedule",
            "timezone", "timeout", "resources", "profile", "namespace", "egress", "retries", "concurrency", "after",
            "plugins", "suspend")
RESOURCE_KEYS = ("memory", "cpus", "pids")
RETRY_KEYS = ("limit", "backoff", "factor", "max_backoff", "on")
EDGE_KEYS = ("job", "when")


class _Problems:
    """Collects problems, each as '<file>: key '<key>': <message>'."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{self.source}: key '{key}': {message}" if key else f"{self.source}: {message}")

    def unknown(self, table: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
        for key in table:
            if key not in known:
                match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f" (did you mean '{match[0]}'?)" if match else f" (known keys: {', '.join(known)})"
                self.add(f"{prefix}{key}", "unknown key" + hint)


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def load_deployment(path: str | os.PathLike, config: Config) -> Deployment:
    """Read and validate a deployment file; `DeploymentInvalid` lists every problem."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text()
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise DeploymentInvalid([f"{source}: file not found"]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise DeploymentInvalid([f"{source}: cannot read the file ({exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise DeploymentInvalid([f"{source}: not valid TOML: {exc}"]) from None
    return parse_deployment(data, source=source, base_dir=file.resolve().parent, config=config, text=text)


def parse_deployment(data: Mapping[str, Any], *, source: str, base_dir: Path, config: Config,
                     text: str = "") -> Deployment:
    """Validate the TOML data of a deployment file (see `load_deployment`)."""
    problems = _Problems(source)
    problems.unknown(data, TOP_KEYS, "")
    meta = data.get("deployment", {})
    if not isinstance(meta, dict):
        problems.add("deployment", f"must be a table, not {_type_name(meta)}")
        meta = {}
    problems.unknown(meta, DEPLOYMENT_KEYS, "deployment.")
    name = meta.get("name", Path(source).stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.add("deployment.name" if "name" in meta else "deployment",
                     f"invalid deployment name {name!r}: use 1-63 letters, digits, '_', '.' or '-'"
                     + ("" if "name" in meta else " (it defaults to the file name; set deployment.name)"))
    namespace = meta.get("namespace")
    if namespace is not None and not _valid_namespace(namespace):
        problems.add("deployment.namespace", f"invalid namespace {namespace!r}: use 1-64 letters, digits, '_', '.' or '-'")
        namespace = None
    description = meta.get("description", "")
    if not isinstance(description, str):
        problems.add("deployment.description", "must be a string")
        description = ""

    jobs_table = data.get("jobs")
    jobs: dict[str, JobDefinition] = {}
    scripts: dict[str, bytes] = {}
    warnings: list[str] = []
    if not isinstance(jobs_table, dict) or not jobs_table:
        problems.add("jobs", "a deployment declares at least one job: add a [jobs.NAME] table")
        jobs_table = {}
    for job_name, table in jobs_table.items():
        key = f"jobs.{job_name}"
        if not NAME_RE.match(job_name):
            problems.add(key, f"invalid job name {job_name!r}: use 1-63 letters, digits, '_', '.' or '-', "
                              "starting with a letter or digit")
            continue
        if not isinstance(table, dict):
            problems.add(key, f"must be a table, not {_type_name(table)}")
            continue
        job = _parse_job(job_name, table, key, problems, base_dir=base_dir, config=config,
                         deployment=str(name), namespace=namespace, source=source, scripts=scripts, warnings=warnings)
        if job is not None:
            jobs[job_name] = job
    _check_edges(jobs, jobs_table, problems)
    if problems.items:
        raise DeploymentInvalid(problems.items)
    return Deployment(name=str(name), path=source, source=text, jobs=jobs, scripts=scripts, namespace=namespace,
                      description=description, warnings=warnings)


def _valid_namespace(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^[A-Za-z0-9_.-]{1,64}$", value) is not None


def _parse_job(name: str, t: Mapping[str, Any], key: str, problems: _Problems, *, base_dir: Path, config: Config,
               deployment: str, namespace: str | None, source: str, scripts: dict[str, bytes],
               warnings: list[str]) -> JobDefinition | None:
    before = len(problems.items)
    problems.unknown(t, JOB_KEYS, f"{key}.")
    k = lambda sub: f"{key}.{sub}"  # noqa: E731 - the key of a sub-field, for messages

    def typed(sub: str, kinds: tuple[type, ...], what: str, default: Any = None) -> Any:
        if sub not in t:
            return default
        value = t[sub]
        if isinstance(value, bool) and bool not in kinds:
            problems.add(k(sub), f"expected {what}, found {value!r}")
            return default
        if not isinstance(value, kinds):
            problems.add(k(sub), f"expected {what}, found {_type_name(value)} {value!r}")
            return default
        return value

    description = typed("description", (str,), "a string", "")
    job_type = typed("type", (str,), "a string")
    if job_type is not None and job_type not in JOB_TYPES:
        problems.add(k("type"), f"unknown job type {job_type!r}: use one of {', '.join(JOB_TYPES)}")
        job_type = None

    # --- what runs: a script file, an inline script, or an image + command ----------------------
    script_path = typed("script", (str,), "a path to a script file, relative to the deployment file")
    inline = typed("inline", (str,), "the script's source text")
    image = typed("image", (str,), "an image name such as cronium/python:latest")
    command = t.get("command")
    script_name = body = None
    if command is not None:
        if isinstance(command, str):
            try:
                command = shlex.split(command)
            except ValueError as exc:
                problems.add(k("command"), f"cannot split the command: {exc}")
                command = None
        elif not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
            problems.add(k("command"), "expected a non-empty array of strings (or one string, split like a shell)")
            command = None
    if script_path is not None and inline is not None:
        problems.add(k("inline"), "give either 'script' (a file) or 'inline' (the source), not both")
    elif script_path is not None:
        file = (base_dir / script_path)
        try:
            body = file.read_bytes()
            script_name = file.name
        except FileNotFoundError:
            problems.add(k("script"), f"script file {script_path!r} not found (looked at {file})")
        except IsADirectoryError:
            problems.add(k("script"), f"{script_path!r} is a directory, not a script file")
        except PermissionError:
            problems.add(k("script"), f"script file {script_path!r} is not readable (permission denied)")
        if job_type is None and body is not None:
            job_type = EXTENSION_TYPES.get(Path(script_path).suffix.lower())
            if job_type is None:
                problems.add(k("type"), f"cannot tell the job type from {script_path!r}: set type = "
                                        "\"python\", \"bash\" or \"node\"")
    elif inline is not None:
        body = inline.encode()
        if job_type is None:
            problems.add(k("type"), "an inline script needs type = \"python\", \"bash\" or \"node\"")
        else:
            script_name = f"{name}{SCRIPT_EXTENSIONS.get(job_type, '')}"
    elif job_type is None and image is not None:
        job_type = "container"
    if job_type == "container":
        if image is None:
            problems.add(k("image"), "a container job needs an image")
        if not command and body is None:
            problems.add(k("command"), "a container job needs a command")
        if body is not None:
            problems.add(k("script" if script_path else "inline"), "a container job runs 'command'; "
                                                                    "use type python, bash or node for a script")
    elif job_type is not None:
        if body is None and script_path is None and inline is None:
            problems.add(key, f"a {job_type} job needs 'script' (a file) or 'inline' (the source)")
        if command is not None:
            problems.add(k("command"), f"a {job_type} job runs its script; 'command' is for type = \"container\"")
    elif script_path is None and inline is None:
        problems.add(key, "nothing to run: give 'script', 'inline', or 'image' and 'command'")
    max_bytes = config["deploy.max_script_bytes"]
    digest = None
    if body is not None:
        if len(body) > max_bytes:
            problems.add(k("script" if script_path else "inline"),
                         f"the script is {len(body)} bytes, above deploy.max_script_bytes ({max_bytes})")
        digest = hashlib.sha256(body).hexdigest()
        scripts[digest] = body

    # --- input and environment -----------------------------------------------------------------
    job_input = t.get("input")
    if job_input is not None:
        try:
            json.dumps(job_input)
        except (TypeError, ValueError):
            problems.add(k("input"), "must be JSON-like (TOML dates and times are not allowed)")
    env = {}
    env_table = typed("env", (dict,), "a table of NAME = \"value\"", {})
    for var, value in env_table.items():
        if not ENV_NAME_RE.match(var) or var.startswith("CRONIUM_"):
            problems.add(k(f"env.{var}"), "invalid or reserved environment variable name")
        elif isinstance(value, bool):
            env[var] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            env[var] = str(value)
        else:
            problems.add(k(f"env.{var}"), f"expected a string, found {_type_name(value)}")
    secret_env = {}
    for var, ref in typed("secret_env", (dict,), "a table of NAME = \"env:VARIABLE\"", {}).items():
        if not ENV_NAME_RE.match(var) or var.startswith("CRONIUM_"):
            problems.add(k(f"secret_env.{var}"), "invalid or reserved environment variable name")
        elif var in env:
            problems.add(k(f"secret_env.{var}"), "also set in 'env': give each variable once")
        elif not isinstance(ref, str) or not SECRET_REF_RE.match(ref):
            problems.add(k(f"secret_env.{var}"), "must be a reference such as \"env:MY_TOKEN\" (the variable is "
                                                 "read on the worker when the job runs); secret values are never "
                                                 "written in deployment files")
        else:
            secret_env[var] = ref
            if SECRET_REF_RE.match(ref).group(1) not in os.environ:
                warnings.append(f"{source}: {k(f'secret_env.{var}')} refers to ${SECRET_REF_RE.match(ref).group(1)}, "
                                "which is not set here; it must be set on every worker")

    # --- schedule --------------------------------------------------------------------------------
    schedule = typed("schedule", (str,), "a cron expression such as \"*/5 * * * *\", a macro such as \"@hourly\", "
                                         "or \"@every 30s\"")
    tz_name = typed("timezone", (str,), "an IANA time zone such as \"Europe/Berlin\"", "UTC")
    if schedule is not None:
        try:
            parse_schedule(schedule, "UTC")
        except ScheduleError as exc:
            problems.add(k("schedule"), f"invalid schedule {schedule!r}: {exc}")
    try:
        parse_schedule("* * * * *", tz_name)
    except ScheduleError as exc:
        problems.add(k("timezone"), str(exc))
    suspend = typed("suspend", (bool,), "true or false", False)

    # --- limits and placement ----------------------------------------------------------------
    timeout = None
    if "timeout" in t:
        try:
            timeout = parse_duration(t["timeout"])
            if timeout > config["limits.max_timeout"]:
                problems.add(k("timeout"), f"{timeout:g}s is above limits.max_timeout ({config['limits.max_timeout']}s)")
        except ScheduleError as exc:
            problems.add(k("timeout"), str(exc))
    resources = Resources()
    res_table = typed("resources", (dict,), "a table such as { memory = \"256m\", cpus = 0.5, pids = 128 }", {})
    problems.unknown(res_table, RESOURCE_KEYS, k("resources."))
    memory = cpus = pids = None
    if "memory" in res_table:
        try:
            memory = parse_size(res_table["memory"])
            if memory < 6 * 1024 * 1024:
                problems.add(k("resources.memory"), "too small: Docker needs at least 6m")
        except ValueError:
            problems.add(k("resources.memory"), f"not a size: {res_table['memory']!r} (use e.g. \"256m\" or \"1g\")")
    if "cpus" in res_table:
        cpus = res_table["cpus"]
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0:
            problems.add(k("resources.cpus"), f"expected a positive number such as 0.5, found {cpus!r}")
            cpus = None
        else:
            cpus = float(cpus)
    if "pids" in res_table:
        pids = res_table["pids"]
        if isinstance(pids, bool) or not isinstance(pids, int) or pids < 8:
            problems.add(k("resources.pids"), f"expected a whole number >= 8, found {pids!r}")
            pids = None
    resources = Resources(memory=memory, cpus=cpus, pids=pids)
    profile = typed("profile", (str,), "the name of a security profile")
    if profile is not None:
        try:
            config.profile(profile)
        except ConfigError as exc:
            problems.add(k("profile"), exc.message + (f" ({exc.hint})" if exc.hint else ""))
    job_ns = typed("namespace", (str,), "a namespace name")
    if job_ns is not None and not _valid_namespace(job_ns):
        problems.add(k("namespace"), f"invalid namespace {job_ns!r}: use 1-64 letters, digits, '_', '.' or '-'")
    egress = typed("egress", (bool,), "true or false", False)
    if egress and not config["network.egress_allowed"]:
        warnings.append(f"{source}: {k('egress')} asks for network egress, but network.egress_allowed is false "
                        "here; workers without it will refuse the job")

    # --- retries, concurrency, workflow edges, plugin settings ------------------------------------
    retries = _parse_retries(t.get("retries"), k("retries"), problems)
    concurrency = typed("concurrency", (str,), "one of " + ", ".join(CONCURRENCY_POLICIES), "allow")
    if concurrency not in CONCURRENCY_POLICIES:
        problems.add(k("concurrency"), f"unknown policy {concurrency!r}: use one of {', '.join(CONCURRENCY_POLICIES)}")
    after = _parse_edges(t.get("after"), k("after"), problems)
    plugins = typed("plugins", (dict,), "a table of [jobs.NAME.plugins.PLUGIN] tables", {})
    for plugin, settings in plugins.items():
        if not isinstance(settings, dict):
            problems.add(k(f"plugins.{plugin}"), f"expected a table of settings, found {_type_name(settings)}")
        else:
            try:
                json.dumps(settings)
            except (TypeError, ValueError):
                problems.add(k(f"plugins.{plugin}"), "settings must be JSON-like (no TOML dates and times)")

    if len(problems.items) > before:
        return None
    defn = JobDefinition(
        name=name, deployment=deployment, job_type=job_type, script_name=script_name, script_digest=digest,
        script_bytes=len(body) if body is not None else None, image=image, command=tuple(command or ()),
        input=job_input, env=env, secret_env=secret_env, schedule=schedule, timezone=tz_name, timeout=timeout,
        resources=resources, profile=profile, namespace=job_ns or namespace, egress=egress, retries=retries,
        concurrency=concurrency, after=after, plugins=plugins, suspend=suspend, description=description,
        source=source)
    # The lifecycle's own checks, with placeholder secrets (catches anything missed above).
    from ..lifecycle import validate_spec

    try:
        placeholders = {SECRET_REF_RE.match(ref).group(1): "placeholder" for ref in secret_env.values()}
        validate_spec(defn.job_spec(body, execution_id="exec_0000000000000000", input=job_input,
                                    environ=placeholders), config)
    except UsageError as exc:
        problems.add(key, exc.message)
        return None
    return defn


def _parse_retries(value: Any, key: str, problems: _Problems) -> RetryPolicy:
    if value is None:
        return RetryPolicy()
    if isinstance(value, int) and not isinstance(value, bool):
        table: dict[str, Any] = {"limit": value}
    elif isinstance(value, dict):
        table = value
        problems.unknown(table, RETRY_KEYS, f"{key}.")
    else:
        problems.add(key, "expected a number of retries, or a table { limit = 3, backoff = \"10s\", factor = 2 }")
        return RetryPolicy()
    limit = table.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 100:
        problems.add(f"{key}.limit" if isinstance(value, dict) else key, f"expected a whole number 0-100, found {limit!r}")
        limit = 0
    policy = {"limit": limit}
    for sub in ("backoff", "max_backoff"):
        if sub in table:
            try:
                policy[sub] = parse_duration(table[sub])
            except ScheduleError as exc:
                problems.add(f"{key}.{sub}", str(exc))
    if "factor" in table:
        factor = table["factor"]
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 <= factor <= 10:
            problems.add(f"{key}.factor", f"expected a number between 1 and 10, found {factor!r}")
        else:
            policy["factor"] = float(factor)
    if "on" in table:
        on = table["on"]
        if not isinstance(on, list) or not on or any(s not in RETRYABLE_STATUSES for s in on):
            problems.add(f"{key}.on", f"expected a list of statuses out of {', '.join(RETRYABLE_STATUSES)}")
        else:
            policy["on"] = tuple(on)
    return RetryPolicy(**policy)


def _parse_edges(value: Any, key: str, problems: _Problems) -> tuple[Edge, ...]:
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
        problems.unknown(item, EDGE_KEYS, f"{item_key}.")
        job, when = item.get("job"), item.get("when", "succeeded")
        if not isinstance(job, str) or not job:
            problems.add(f"{item_key}.job", "expected the name of a job of this deployment")
            continue
        if when not in EDGE_CONDITIONS:
            problems.add(f"{item_key}.when", f"unknown condition {when!r}: use one of {', '.join(EDGE_CONDITIONS)}")
            continue
        edges.append(Edge(job=job, when=when))
    return tuple(edges)


def _check_edges(jobs: dict[str, JobDefinition], tables: Mapping[str, Any], problems: _Problems) -> None:
    """Edges must name jobs of this deployment, and must not form a cycle."""
    names = set(tables)
    for name, table in tables.items():
        if not isinstance(table, dict):
            continue
        edges = _parse_edges(table.get("after"), "", _Problems(""))  # its own problems are reported already
        for edge in edges:
            key = f"jobs.{name}.after"
            if edge.job == name:
                problems.add(key, "a job cannot run after itself")
            elif edge.job not in names:
                match = difflib.get_close_matches(edge.job, sorted(names), n=1)
                problems.add(key, f"no job {edge.job!r} in this deployment"
                                  + (f" (did you mean {match[0]!r}?)" if match else ""))
    graph = {name: [e.job for e in job.after if e.job in jobs] for name, job in jobs.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for parent in graph.get(node, []):
            if state.get(parent) == 1:
                cycle = path[path.index(parent):] + [parent] if parent in path else [node, parent]
                problems.add(f"jobs.{node}.after", "workflow edges form a cycle: " + " -> ".join(reversed(cycle)))
            elif parent not in state:
                visit(parent, path + [parent])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
