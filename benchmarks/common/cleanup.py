"""Clean-up checks: what carries cronium's labels, which of it is this run's, removing that, and
deleting the Redis keys this run wrote."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .baseline import force_remove_container, remove_network
from .context import BENCH_LABEL, Context
from .orchestrator import make_config


def leftovers(client, label: str = "cronium.managed=true") -> list[dict[str, str]]:
    """Containers, networks and volumes carrying `label`, with their cronium labels."""
    api = client.api
    found = []
    for c in api.containers(all=True, filters={"label": label}):
        names = c.get("Names") or ["/" + c["Id"][:12]]  # a container being removed may have none
        found.append({"kind": "container", "name": names[0].lstrip("/"), "id": c["Id"], "state": c.get("State", ""),
                      "execution": c["Labels"].get("cronium.execution", ""),
                      "owner": c["Labels"].get("cronium.owner", ""), "bench": c["Labels"].get(BENCH_LABEL, "")})
    for n in api.networks(filters={"label": label}):
        labels = n.get("Labels") or {}
        found.append({"kind": "network", "name": n["Name"], "id": n["Id"],
                      "execution": labels.get("cronium.execution", ""), "owner": labels.get("cronium.owner", ""),
                      "bench": labels.get(BENCH_LABEL, "")})
    for v in api.volumes(filters={"label": label}).get("Volumes") or []:
        labels = v.get("Labels") or {}
        found.append({"kind": "volume", "name": v["Name"], "id": v["Name"],
                      "execution": labels.get("cronium.execution", ""), "owner": labels.get("cronium.owner", ""),
                      "bench": labels.get(BENCH_LABEL, "")})
    return found


def ours(ctx: Context, items: list[dict[str, str]]) -> list[dict[str, str]]:
    return [i for i in items if i["bench"] == ctx.run_id or i["owner"] in ctx.owners or i["execution"] in ctx.exec_ids
            or _owned_by_our_child(i["owner"])]


def _owned_by_our_child(owner: str) -> bool:
    """Owner ids are `<host>.<pid>-<pid namespace>.<random>`: a `cronium run` this benchmark
    spawned is our child (its execution id is only known once it has printed it)."""
    parts = owner.rsplit(".", 2)
    pid = parts[1].partition("-")[0] if len(parts) == 3 else ""
    if not pid.isdigit():
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()


def sweep(ctx: Context) -> dict[str, Any]:
    """Remove whatever this run left behind (containers first, then networks), then report what
    still carries `cronium.managed` (ours and, separately, anyone's)."""
    client = ctx.docker
    api = client.api
    removed = []
    for _ in range(3):
        items = ours(ctx, leftovers(client) + leftovers(client, f"{BENCH_LABEL}={ctx.run_id}"))
        if not items:
            break
        for item in items:
            if item["kind"] == "container":
                try:
                    force_remove_container(api, item["id"])
                    removed.append(item["name"])
                except Exception:
                    pass  # e.g. "removal already in progress"
        for item in items:
            if item["kind"] == "network":
                try:
                    remove_network(api, item["id"])
                    removed.append(item["name"])
                except Exception:
                    pass
            elif item["kind"] == "volume":
                try:
                    api.remove_volume(item["id"], force=True)
                    removed.append(item["name"])
                except Exception:
                    pass
    managed = leftovers(client)
    return {"removed_by_sweep": removed, "ours_remaining": [i["name"] for i in ours(ctx, managed)],
            "managed_remaining_any_owner": [i["name"] for i in managed]}


def purge_redis(ctx: Context) -> int:
    """Delete the execution records, log streams and variable namespaces this run wrote to the
    managed Redis (a 1M-line log stream is tens of MB). Returns the number of keys removed."""
    if not ctx.exec_ids and not ctx.namespaces:
        return 0
    from cronium.core.runtime import Runtime

    rt = Runtime(make_config(ctx))
    try:
        store = rt.store
        keys = store.keys
        removed = 0
        ids = sorted(ctx.exec_ids)
        for i in range(0, len(ids), 200):
            chunk = ids[i:i + 200]
            pipe = store.redis.pipeline(transaction=False)
            for eid in chunk:
                pipe.delete(keys.execution(eid), keys.logs(eid))
            pipe.zrem(keys.executions, *chunk)
            removed += sum(r for r in pipe.execute()[:-1] if isinstance(r, int))
        for ns in ctx.namespaces:
            removed += store.redis.delete(keys.variables(ns))
        return removed
    finally:
        rt.close()
