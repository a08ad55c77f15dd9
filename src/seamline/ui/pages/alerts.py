"""Alerts: what fired in the range, newest first, each with its evidence, how it was
delivered, the eval runs it started, and links to the calls behind it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.monitoring.alerts import AlertStore
from seamline.registry.sessions import Session
from seamline.ui.pages import Page, register
from seamline.ui.web import page, registry_of, render, time_range


@page
def alert_list(request: Request, session: Session) -> Response:
    name, start, _ = time_range(request.query_params)
    kind = request.query_params.get("kind") or None
    alerts = AlertStore(registry_of(request).db).recent(session.actor.project.id, start, kind)
    return render(
        request,
        session,
        "alerts.html",
        current="alerts",
        range_name=name,
        kind=kind or "",
        alerts=alerts,
    )


register(Page("alerts", "Alerts", 80, [Route("/alerts", alert_list)]))
