"""Audit log: every registry action of the project, newest first (releases, approvals,
overrides, keys, sign-ins), with the hash chain verified on every view."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.registry.sessions import Session
from seamline.ui.pages import Page, register
from seamline.ui.web import PAGE_SIZE, page, page_number, registry_of, render


@page
def audit_log(request: Request, session: Session) -> Response:
    registry = registry_of(request)
    number = page_number(request.query_params)
    action = request.query_params.get("action") or None
    entries = registry.audit_log(session.actor, action=action)
    entries.sort(key=lambda entry: -entry.seq)
    shown = entries[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    return render(
        request,
        session,
        "audit.html",
        current="audit",
        entries=shown,
        number=number,
        more=len(entries) > number * PAGE_SIZE,
        action=action or "",
        chain=registry.verify_audit(session.actor),
    )


register(Page("audit", "Audit log", 90, [Route("/audit", audit_log)]))
