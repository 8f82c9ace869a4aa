"""The fleet page at `/fleet`: workers (host, heartbeat age, running jobs, warm pool), the other
live processes, the queue figures (the Prometheus gauges' own figures, under their metric names),
dead letters, the scheduler leader, and two charts of the last hour (executions per minute, mean
phase durations). The data is `fleet_data.fleet_snapshot`."""
from __future__ import annotations

import time

from sanic import Blueprint

from cronium.core.cli.display import duration

from .app import blocking
from .charts import Bar, bar_chart
from .fleet_data import Activity, fleet_snapshot
from .render import render

bp = Blueprint("fleet")

#: What each queue figure means, by `Queue.stats()` field (the metric's help says the same).
QUEUE_LABELS = {"length": "in the queue", "waiting": "waiting for a worker", "pending": "delivered, running",
                "delayed": "waiting for a retry", "dead_letters": "dead letters"}


def activity_charts(act: Activity) -> tuple:
    """The two charts of the fleet page."""
    per_minute = [Bar(time.strftime("%H:%M", time.localtime(act.window_start + 60 * i)), n,
                      title=f"{n} execution(s) created in the minute from "
                            f"{time.strftime('%H:%M', time.localtime(act.window_start + 60 * i))}")
                  for i, n in enumerate(act.per_minute)]
    phases = [Bar(phase, mean, title=f"{phase}: mean {duration(mean)} over {n} execution(s)")
              for phase, mean, n in act.phase_means]
    return (bar_chart(per_minute, title="executions per minute, last hour", every_label=10),
            bar_chart(phases, title="mean phase duration (seconds), last hour") if phases else None)


@bp.get("/fleet")
async def fleet_page(request):
    snap = await blocking(fleet_snapshot, request.app.ctx.store, request.app.ctx.config)
    per_minute, phases = activity_charts(snap.activity)
    return render(request, "fleet.html", snap=snap, queue_labels=QUEUE_LABELS, per_minute_chart=per_minute,
                  phase_chart=phases)
