"""Guards: what the guards found and did over the range, per policy version and detector
(blocks, redactions, flags; enforced or in shadow), and the latest blocked calls."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.registry.sessions import Session
from seamline.telemetry.search import CallFilter, guard_activity, search
from seamline.ui.pages import Page, register
from seamline.ui.web import page, registry_of, render, time_range


@page
def guards(request: Request, session: Session) -> Response:
    name, start, end = time_range(request.query_params)
    project_id = session.actor.project.id
    with registry_of(request).db.read() as conn:
        activity = guard_activity(conn, project_id, start, end)
        blocked, _ = search(
            conn, project_id, CallFilter(start=start, end=end, status="blocked"), size=20
        )
    return render(
        request,
        session,
        "guards.html",
        current="guards",
        range_name=name,
        activity=activity,
        blocked=blocked,
    )


register(Page("guards", "Guards", 70, [Route("/guards", guards)]))
