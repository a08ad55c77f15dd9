"""Prompts: every prompt with its aliases; one prompt's versions, aliases and their history,
approvals, eval-gate runs and live figures per version (canary against control); a
side-by-side diff of any two versions; and approve, promote and roll back, through the same
registry operations as the CLI, so the same policies, approvals and audit entries apply."""

from __future__ import annotations

import difflib
import html
from datetime import timedelta

from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from seamline.core.clock import utcnow
from seamline.core.errors import InvalidInput
from seamline.evals.runs import RunStore
from seamline.monitoring.feedback import FeedbackStore
from seamline.monitoring.quality import CallScores
from seamline.registry import Scope
from seamline.registry.sessions import Session
from seamline.registry.specs import content_as_yaml
from seamline.telemetry import series
from seamline.telemetry.rollups import hour_of
from seamline.ui.pages import Page, register
from seamline.ui.web import action, link, page, quoted, registry_of, render, whole_number

PROMPT = "prompt"
LIVE_WINDOW = timedelta(days=7)
DONE = {
    "approved": "Approval recorded.",
    "promoted": "Alias moved.",
    "rolled-back": "Alias rolled back.",
}


@page
def prompt_list(request: Request, session: Session) -> Response:
    prompts = registry_of(request).list_artefacts(session.actor, PROMPT)
    return render(request, session, "prompts.html", current="prompts", prompts=prompts)


@page
def prompt_detail(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    registry = registry_of(request)
    actor = session.actor
    versions = registry.versions(actor, PROMPT, name)
    aliases = registry.aliases(actor, PROMPT, name)
    history = {a.name: registry.alias_history(actor, PROMPT, name, a.name) for a in aliases}
    end = hour_of(utcnow()) + timedelta(hours=1)
    since = end - LIVE_WINDOW
    with registry.db.read() as conn:
        live = series.breakdown(
            conn, actor.project.id, since, end, ("prompt_name", "prompt_version"), prompt=name
        )
    feedback = {
        summary.prompt: summary.as_record()
        for summary in FeedbackStore(registry.db).summary(actor.project.id, since, name)
    }
    quality = CallScores(registry.db).report(actor.project.id, since, name).as_record()
    return render(
        request,
        session,
        "prompt.html",
        current="prompts",
        name=name,
        versions=versions,
        aliases=aliases,
        history=history,
        approvals=registry.approvals(actor, PROMPT, name),
        runs=RunStore(registry.db, actor.project.id).latest(prompt_name=name, limit=20),
        live=[(group[1], figures) for group, figures in live],
        serving={v.number: [a for a in aliases if a.version == v.number] for v in versions},
        feedback=feedback,
        quality=quality,
        done=DONE.get(request.query_params.get("done", "")),
        can_write=actor.can(Scope.WRITE),
    )


@page
def prompt_diff(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    registry = registry_of(request)
    versions = registry.versions(session.actor, PROMPT, name)
    numbers = sorted(v.number for v in versions)
    if not numbers:
        raise InvalidInput(f"prompt {name!r} has no versions")
    a = _version(request.query_params.get("a"), min(numbers[-2:]))
    b = _version(request.query_params.get("b"), max(numbers))
    old = registry.get_version(session.actor, PROMPT, name, a)
    new = registry.get_version(session.actor, PROMPT, name, b)
    # HtmlDiff escapes the lines it lays out (&, < and >) but not the column headers, which
    # hold the authors' names (free text): those are escaped here.
    table = difflib.HtmlDiff(wrapcolumn=90).make_table(
        content_as_yaml(old.content).splitlines(),
        content_as_yaml(new.content).splitlines(),
        html.escape(f"v{old.number} ({old.author})"),
        html.escape(f"v{new.number} ({new.author})"),
    )
    return render(
        request,
        session,
        "prompt_diff.html",
        current="prompts",
        name=name,
        numbers=numbers,
        a=old.number,
        b=new.number,
        same=old.content_hash == new.content_hash,
        table=Markup(table),
    )


def _version(value: str | None, default: int) -> int:
    return default if not value else whole_number(value, "version")


@action
def approve(request: Request, session: Session, form: FormData) -> Response:
    name = request.path_params["name"]
    registry_of(request).approve(
        session.actor,
        PROMPT,
        name,
        _version(str(form.get("version", "")), 0),
        alias=str(form.get("alias") or "production"),
        comment=str(form.get("comment") or "") or None,
    )
    return _back(request, name, "approved")


@action
def promote(request: Request, session: Session, form: FormData) -> Response:
    name = request.path_params["name"]
    weight = str(form.get("weight") or "").strip()
    registry_of(request).move_alias(
        session.actor,
        PROMPT,
        name,
        str(form.get("alias") or "production"),
        _version(str(form.get("version", "")), 0),
        weight=whole_number(weight, "weight", most=100) if weight else None,
        reason=str(form.get("reason") or "") or None,
    )
    return _back(request, name, "promoted")


@action
def rollback(request: Request, session: Session, form: FormData) -> Response:
    name = request.path_params["name"]
    registry_of(request).rollback(
        session.actor,
        PROMPT,
        name,
        str(form.get("alias") or "production"),
        reason=str(form.get("reason") or "") or None,
    )
    return _back(request, name, "rolled-back")


def _back(request: Request, name: str, done: str) -> Response:
    return RedirectResponse(link(request, f"/prompts/{quoted(name)}", done=done), status_code=303)


register(
    Page(
        "prompts",
        "Prompts",
        30,
        [
            Route("/prompts", prompt_list),
            Route("/prompts/{name}", prompt_detail),
            Route("/prompts/{name}/diff", prompt_diff),
            Route("/prompts/{name}/approve", approve, methods=["POST"]),
            Route("/prompts/{name}/promote", promote, methods=["POST"]),
            Route("/prompts/{name}/rollback", rollback, methods=["POST"]),
        ],
    )
)
