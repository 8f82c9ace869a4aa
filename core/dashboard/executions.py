"""The execution pages: the list at `/` and one execution at `/executions/<id>` with its log.

The list is `cronium ps -a`'s query (`core.listing.select`) with the same filters, paged
backwards in time (`before`: the creation time the next page starts below); the page polls
`/partials/executions` (the same rows as HTML) for live updates. One execution shows the record
as `cronium inspect` does (`display.human_fields`; the stored spec holds no secret values and
`HIDDEN_FIELDS` keep out the stored definition with its script and environment values), a phase
timeline, the log, and follows the log over server-sent events while the execution runs.
"""
from __future__ import annotations

from sanic import Blueprint, response

from cronium.core.cli.display import human_fields
from cronium.core.errors import CroniumError, UsageError
from cronium.core.listing import select
from cronium.core.model import ENDED_STATUSES, Status

from .app import blocking
from .auth import action
from .logview import log_lines, stream_log
from .render import error_page, render
from .timeline import phase_bars

bp = Blueprint("executions")

PAGE_SIZE = 50
#: Record fields never shown: the stored definition carries the script and environment values.
HIDDEN_FIELDS = ("definition", "spec", "context", "input", "output", "condition", "metadata", "timings", "error",
                 "error_phase", "error_hint", "fix")
STATUSES = tuple(s.value for s in Status)


def _filters(request) -> dict:
    """The list's filters from the query string; `UsageError` naming a bad one."""
    from cronium.core.cli.options import parse_since

    args = request.args
    statuses = tuple(s for s in args.getlist("status", []) if s)
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise UsageError(f"unknown status {unknown[0]!r}", hint=f"use one of {', '.join(STATUSES)}")
    try:
        before = float(args.get("before")) if args.get("before") else None
    except ValueError:
        raise UsageError("before must be a unix time", hint="use the page's Older link") from None
    return {"statuses": statuses, "job": args.get("job") or None, "namespace": args.get("namespace") or None,
            "since": parse_since(args.get("since") or None, option="since"),
            "until": min(filter(None, (parse_since(args.get("until") or None, option="until"), before)),
                         default=None)}


async def _rows(request) -> tuple[list[dict], dict]:
    """One page of rows for the request's filters, and the link parameters of the next page."""
    f = _filters(request)
    store = request.app.ctx.store
    rows = await blocking(select, store, show_all=True, since=f["since"], until=f["until"], namespace=f["namespace"],
                          job=f["job"], statuses=f["statuses"], limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = [*((k, v) for k, v in request.query_args if k != "before"), ("before", repr(rows[-1]["created_at"]))] \
        if more and rows else None
    return rows, {"older": older}


@bp.get("/")
async def executions_list(request):
    try:
        rows, paging = await _rows(request)
    except UsageError as exc:
        return error_page(request, 400, "Bad filter", exc.message, exc.hint or "")
    return render(request, "executions.html", rows=rows, statuses=STATUSES, args=request.args, **paging)


@bp.get("/partials/executions")
async def executions_rows(request):
    """The list's rows as an HTML fragment (what the list page's script polls)."""
    try:
        rows, _ = await _rows(request)
    except UsageError as exc:
        return response.text(exc.message, status=400)
    return render(request, "_execution_rows.html", rows=rows)


async def _record(request, execution_id: str) -> dict:
    return await blocking(request.app.ctx.store.records.get, execution_id)


@bp.get("/executions/<execution_id>")
async def execution_page(request, execution_id: str):
    rec = await _record(request, execution_id)
    lines, last_id, more = await blocking(log_lines, request.app.ctx.store, execution_id)
    shown = [(k, v) for k, v in human_fields(rec) if k not in HIDDEN_FIELDS]
    return render(request, "execution.html", rec=rec, fields=shown, bars=phase_bars(rec.get("timings") or {}),
                  lines=lines, last_id=last_id, more_lines=more, live=rec.get("status") not in ENDED_STATUSES,
                  neighbours=_neighbours(rec))


def _neighbours(rec: dict) -> list[tuple[str, str]]:
    """(relation, execution id) links: the retried and retrying executions, the workflow parent."""
    meta = {**(rec.get("metadata") or {}), **((rec.get("context") or {}).get("metadata") or {})}
    out = [("retry of", rec.get("retry_of") or meta.get("retry_of")), ("retried by", rec.get("retried_by")),
           ("after (workflow parent)", meta.get("parent_execution"))]
    return [(k, v) for k, v in out if v]


@bp.get("/executions/<execution_id>/log/events")
async def execution_log_events(request, execution_id: str):
    """The log as server-sent events from `after` (or Last-Event-ID) until the execution ends."""
    await _record(request, execution_id)  # 404 for an unknown id
    after = request.headers.get("last-event-id") or request.args.get("after") or "0-0"
    resp = await request.respond(content_type="text/event-stream", headers={"Cache-Control": "no-store"})
    await stream_log(request.app.ctx.store, execution_id, after, resp.send)
    await resp.eof()


@bp.post("/executions/<execution_id>/cancel")
@action
async def execution_cancel(request, execution_id: str):
    from cronium.core.fleet.queue import Queue

    store, config = request.app.ctx.store, request.app.ctx.config
    outcome = await blocking(Queue(store, config).cancel, execution_id, "cancelled from the dashboard")
    if outcome == "missing":
        return error_page(request, 404, "Not found", f"no execution '{execution_id}'")
    if outcome.startswith("final:"):
        return error_page(request, 409, "Already ended",
                          f"{execution_id} already ended ({outcome.split(':', 1)[1]}): nothing to cancel")
    return response.redirect(f"/executions/{execution_id}", status=303)


@bp.post("/executions/<execution_id>/retry")
@action
async def execution_retry(request, execution_id: str):
    from cronium.core.cli.retry_cmd import retry_execution

    store, config = request.app.ctx.store, request.app.ctx.config
    try:
        new_id = await blocking(retry_execution, store, config, execution_id)
    except CroniumError as exc:
        if type(exc).__name__ == "NotFound":
            raise
        return error_page(request, 409, "Not retried", exc.message, exc.hint or "")
    return response.redirect(f"/executions/{new_id}", status=303)
