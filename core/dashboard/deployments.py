"""The deployments page at `/deployments`: every deployed job with its next runs (in its own time
zone), last runs, concurrency policy and workflow edges (a small graph), and a "run now" button.

The data is `deployments_data.deployments_view` (the scheduler's own next-fire code); "run now"
is `Queue.submit`, the code path of `cronium submit`: the job's own input, its concurrency policy
applied, `trigger` manual. It is an action (`auth.action`: admin role, CSRF token, same origin).
"""
from __future__ import annotations

import socket
from urllib.parse import quote

from sanic import Blueprint, response

from cronium.core.cli.display import when_in
from cronium.core.errors import CroniumError, NotFound

from .app import blocking
from .auth import action
from .charts import workflow_graph
from .deployments_data import deployments_view
from .render import error_page, render

bp = Blueprint("deployments")


def _graph(view):
    """The workflow graph of the jobs that have an edge (None when no job has one)."""
    if not view.edges:
        return None
    nodes = sorted({e.parent for e in view.edges} | {e.child for e in view.edges})
    return workflow_graph(nodes, [(e.parent, e.child, e.when) for e in view.edges])


@bp.get("/deployments")
async def deployments_page(request):
    view = await blocking(deployments_view, request.app.ctx.store)
    jobs = [{"view": j, "next": [when_in(ts, j.job.timezone) for ts in j.next_runs],
             "run_url": f"/deployments/jobs/{quote(j.name, safe='')}/run"} for j in view.jobs]
    return render(request, "deployments.html", jobs=jobs, edges=view.edges, graph=_graph(view),
                  scanned=view.scanned)


@bp.post("/deployments/jobs/<job>/run")
@action
async def run_now(request, job: str):
    """Enqueue one run of `job` as `cronium submit JOB` does; then show the new execution."""
    from cronium.core.fleet.queue import Queue

    store, config = request.app.ctx.store, request.app.ctx.config
    who = f"dashboard ({request.ctx.auth.role}) on {socket.gethostname()}"
    try:
        result = await blocking(Queue(store, config).submit, job, submitted_by=who)
    except NotFound:
        raise
    except CroniumError as exc:
        return error_page(request, 409, "Not enqueued", exc.message, exc.hint or "")
    return response.redirect(f"/executions/{result.execution_id}", status=303)
