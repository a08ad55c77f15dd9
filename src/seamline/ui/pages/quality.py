"""Quality and drift: online scores per prompt version with their intervals, canary
against control with the probability that the canary is worse; and semantic drift of each
prompt's inputs over the range against the range before it, with the p-value (Holm-adjusted
across prompts) and the topics that grew or shrank."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.monitoring.drift_report import drift_report
from seamline.monitoring.quality import CallScores
from seamline.registry.sessions import Session
from seamline.ui.pages import Page, register
from seamline.ui.web import page, registry_of, render, time_range


@page
def quality(request: Request, session: Session) -> Response:
    name, start, end = time_range(request.query_params)
    project_id = session.actor.project.id
    db = registry_of(request).db
    scores = CallScores(db).report(project_id, start).as_record()
    drift = drift_report(db, project_id, (start - (end - start), start), (start, end))
    return render(
        request,
        session,
        "quality.html",
        current="quality",
        range_name=name,
        scores=scores,
        drift=drift.as_record(),
    )


register(Page("quality", "Quality & drift", 55, [Route("/quality", quality)]))
