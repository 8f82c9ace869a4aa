"""Deployment files: TOML that declares jobs, read and validated with every problem collected.

A deployment file holds a `[deployment]` table (name, default namespace) and one `[jobs.NAME]`
table per job (see `docs/queue.md` for every key; one job table is read by `jobs.py`).
`load_deployment` reads and validates a file and collects *every* problem, each naming the file and
the key; `registry.DeploymentRegistry` then stores the valid deployment in Redis. Secrets are
stored only as references (`env:VAR`), resolved on the worker when the job runs.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from ..config import Config
from ..errors import DeploymentInvalid
from ..spec import Problems, valid_namespace
from .definition import NAME_RE, Deployment, JobDefinition
from .jobs import JobContext, parse_edges, parse_job, type_name

TOP_KEYS = ("deployment", "jobs")
DEPLOYMENT_KEYS = ("name", "namespace", "description")


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
    return parse_deployment(data, source=source, base_dir=file.resolve().parent, config=config, text=text,
                            origin=str(file.resolve()))


def parse_deployment(data: Mapping[str, Any], *, source: str, base_dir: Path, config: Config,
                     text: str = "", origin: str = "") -> Deployment:
    """Validate the TOML data of a deployment file (see `load_deployment`). `origin` identifies
    where it came from (the file's resolved path; default `source`): a deployment name or a
    namespace registered from one origin is not taken by another without `--replace`."""
    problems = Problems(source)
    problems.unknown(data, TOP_KEYS)
    name, namespace, description = _deployment_table(data, source, problems)
    ctx = JobContext(deployment=name, namespace=namespace, base_dir=base_dir, config=config, scripts={})
    jobs_table = data.get("jobs")
    if not isinstance(jobs_table, dict) or not jobs_table:
        problems.add("jobs", "a deployment declares at least one job: add a [jobs.NAME] table")
        jobs_table = {}
    jobs: dict[str, JobDefinition] = {}
    for job_name, table in jobs_table.items():
        scoped = problems.at(f"jobs.{job_name}.")
        if not NAME_RE.match(job_name):
            scoped.add("", f"invalid job name {job_name!r}: use 1-63 letters, digits, '_', '.' or '-', "
                           "starting with a letter or digit")
        elif not isinstance(table, dict):
            scoped.add("", f"must be a table, not {type_name(table)}")
        else:
            job = parse_job(job_name, table, scoped, ctx)
            if job is not None:
                jobs[job_name] = job
    _check_edges(jobs, jobs_table, problems)
    if problems.items:
        raise DeploymentInvalid(problems.items)
    return Deployment(name=name, path=source, source=text, jobs=jobs, scripts=ctx.scripts, namespace=namespace,
                      description=description, warnings=problems.warnings, origin=origin or source)


def _deployment_table(data: Mapping[str, Any], source: str, problems: Problems) -> tuple[str, str | None, str]:
    """(name, default namespace, description) from `[deployment]`; the name defaults to the file's."""
    meta = data.get("deployment", {})
    if not isinstance(meta, dict):
        problems.add("deployment", f"must be a table, not {type_name(meta)}")
        meta = {}
    problems.at("deployment.").unknown(meta, DEPLOYMENT_KEYS)
    name = meta.get("name", Path(source).stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.add("deployment.name" if "name" in meta else "deployment",
                     f"invalid deployment name {name!r}: use 1-63 letters, digits, '_', '.' or '-'"
                     + ("" if "name" in meta else " (it defaults to the file name; set deployment.name)"))
    namespace = meta.get("namespace")
    if namespace is not None and not valid_namespace(namespace):
        problems.add("deployment.namespace", f"invalid namespace {namespace!r}: use 1-64 letters, digits, '_', '.' or '-'")
        namespace = None
    description = meta.get("description", "")
    if not isinstance(description, str):
        problems.add("deployment.description", "must be a string")
        description = ""
    return str(name), namespace, description


def _check_edges(jobs: dict[str, JobDefinition], tables: Mapping[str, Any], problems: Problems) -> None:
    """Edges must name jobs of this deployment, and must not form a cycle."""
    names = set(tables)
    for name, table in tables.items():
        if not isinstance(table, dict):
            continue
        for edge in parse_edges(table.get("after"), "", Problems("")):  # its own problems are reported already
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
