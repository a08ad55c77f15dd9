"""Evals: the project's eval runs (the release gate's evidence), newest first; one run with
each metric's interval, its difference from the baseline run with the probability that the
candidate is worse, and the gate's conditions with why each passed or failed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.evals.runs import RunStore
from seamline.registry.sessions import Session
from seamline.ui.pages import Page, register
from seamline.ui.web import page, registry_of, render


@page
def run_list(request: Request, session: Session) -> Response:
    prompt = request.query_params.get("prompt") or None
    store = RunStore(registry_of(request).db, session.actor.project.id)
    runs = store.latest(prompt_name=prompt, limit=100)
    return render(request, session, "evals.html", current="evals", runs=runs, prompt=prompt or "")


@page
def run_detail(request: Request, session: Session) -> Response:
    store = RunStore(registry_of(request).db, session.actor.project.id)
    run = store.get(request.path_params["run_id"])  # NotFound for another project's run
    report = run.report or {}
    return render(
        request,
        session,
        "eval_run.html",
        current="evals",
        run=run,
        metrics=report.get("metrics", []),
        conditions=report.get("conditions", []),
    )


register(
    Page(
        "evals",
        "Evals",
        50,
        [Route("/evals", run_list), Route("/evals/{run_id}", run_detail)],
    )
)
