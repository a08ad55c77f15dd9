"""Cost: spend by tenant key, route, use case, model and prompt version over the range, each
with cost per call; the cost per call day by day (the trajectory, not a monthly total); and
the cost anomalies the alert rules opened."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.core.errors import InvalidInput
from seamline.monitoring.alerts import AlertStore
from seamline.registry.sessions import Session
from seamline.telemetry import series
from seamline.telemetry.traces import cost_trajectory
from seamline.ui.pages import Page, register
from seamline.ui.web import page, registry_of, render, time_range

GROUPS = {
    "key": ("api_key_id",),
    "route": ("route",),
    "use_case": ("use_case",),
    "model": ("model_used",),
    "prompt": ("prompt_name", "prompt_version"),
}


@page
def cost(request: Request, session: Session) -> Response:
    name, start, end = time_range(request.query_params)
    by = request.query_params.get("by") or "model"
    if by not in GROUPS:
        raise InvalidInput(f"cannot group cost by {by!r}: use {', '.join(GROUPS)}", param="by")
    project = session.actor.project
    registry = registry_of(request)
    with registry.db.read() as conn:
        rows = series.breakdown(conn, project.id, start, end, GROUPS[by])
        days = cost_trajectory(conn, by, start, project.id, now=end)
    anomalies = AlertStore(registry.db).recent(project.id, start, kind="cost_anomaly")
    total = sum(figures.cost_usd for _, figures in rows)
    return render(
        request,
        session,
        "cost.html",
        current="cost",
        range_name=name,
        by=by,
        groups=list(GROUPS),
        rows=rows,
        total=total,
        days=days,
        anomalies=anomalies,
    )


register(Page("cost", "Cost", 40, [Route("/cost", cost)]))
