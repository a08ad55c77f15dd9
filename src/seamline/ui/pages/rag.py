"""RAG health: of the live RAG calls scored off the request path, how many each stage is
blamed for (retrieval, stale corpus, context integration), per prompt and index, with mean
scores and examples linked to their calls; and each index's freshness (sources changed or
gone since it was built, how often it is rebuilt)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.rag.assessments import Assessments
from seamline.rag.freshness import version_freshness
from seamline.rag.online import ATTRIBUTIONS, OK
from seamline.registry.sessions import Session
from seamline.ui.pages import Page, register
from seamline.ui.web import page, registry_of, render, time_range

INDEX = "index"


@page
def rag_health(request: Request, session: Session) -> Response:
    name, start, _ = time_range(request.query_params)
    registry = registry_of(request)
    actor = session.actor
    report = Assessments(registry.db).report(actor.project.id, start)
    indexes = []
    for summary in registry.list_artefacts(actor, INDEX):
        versions = registry.versions(actor, INDEX, summary.name)
        latest = max(versions, key=lambda v: v.number)
        indexes.append((summary, version_freshness(latest, [v.created_at for v in versions])))
    return render(
        request,
        session,
        "rag.html",
        current="rag",
        range_name=name,
        report=report,
        kinds=[kind for kind in ATTRIBUTIONS if kind != OK],
        ok=OK,
        indexes=indexes,
    )


register(Page("rag", "RAG health", 60, [Route("/rag", rag_health)]))
