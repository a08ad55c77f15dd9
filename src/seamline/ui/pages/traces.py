"""Traces: the calls, filtered, sorted and paged on the server; one call with everything
recorded about it (as the project's content policy allowed); a session as a
conversation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.core.clock import utcnow
from seamline.core.errors import InvalidInput
from seamline.monitoring.feedback import FeedbackStore
from seamline.monitoring.quality import CallScores
from seamline.registry.sessions import Session
from seamline.telemetry import traces
from seamline.telemetry.search import SORTS, CallFilter, search, session_calls
from seamline.ui.pages import Page, register
from seamline.ui.web import PAGE_SIZE, RANGES, page, page_number, registry_of, render

FILTERS = (
    "status",
    "model",
    "prompt",
    "arm",
    "user",
    "session",
    "use_case",
    "q",
    "min_cost",
    "min_latency",
)
STATUSES = ("ok", "error", "blocked")
ALL_TIME = "all"


@page
def trace_list(request: Request, session: Session) -> Response:
    query = request.query_params
    where, range_name = _filter(query)
    sort = query.get("sort") or "time"
    descending = query.get("order", "desc") != "asc"
    number = page_number(query)
    with registry_of(request).db.read() as conn:
        calls, more = search(
            conn,
            session.actor.project.id,
            where,
            sort=sort,
            descending=descending,
            page=number,
            size=PAGE_SIZE,
        )
    kept = {name: query.get(name, "") for name in (*FILTERS, "range")}
    return render(
        request,
        session,
        "traces.html",
        current="traces",
        calls=calls,
        more=more,
        number=number,
        sort=sort,
        descending=descending,
        kept=kept,
        range_name=range_name,
        ranges=[*RANGES, ALL_TIME],
        statuses=STATUSES,
        sorts=list(SORTS),
    )


def _filter(query: Mapping[str, str]) -> tuple[CallFilter, str]:
    range_name = query.get("range") or "24h"
    if range_name != ALL_TIME and range_name not in RANGES:
        raise InvalidInput(f"unknown range {range_name!r}", param="range")
    start = None if range_name == ALL_TIME else utcnow() - RANGES[range_name]
    return (
        CallFilter(
            start=start,
            status=query.get("status") or None,
            model=query.get("model") or None,
            prompt=query.get("prompt") or None,
            arm=query.get("arm") or None,
            user=query.get("user") or None,
            session=query.get("session") or None,
            use_case=query.get("use_case") or None,
            min_cost_usd=_number(query, "min_cost"),
            min_latency_ms=_number(query, "min_latency"),
            text=query.get("q") or None,
        ),
        range_name,
    )


def _number(query: Mapping[str, str], name: str) -> float | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number", param=name) from None


@page
def trace_detail(request: Request, session: Session) -> Response:
    request_id = request.path_params["request_id"]
    project = session.actor.project
    db = registry_of(request).db
    with db.read() as conn:
        call = traces.one(conn, project.id, request_id)
        feedback = FeedbackStore(db).of_call(conn, project.id, request_id, call["session_id"])
    scores = CallScores(db).of_call(project.id, request_id)
    return render(
        request,
        session,
        "trace.html",
        current="traces",
        call=call,
        feedback=feedback,
        scores=scores,
        messages=_messages(call),
        timings=_timings(call),
    )


@page
def session_detail(request: Request, session: Session) -> Response:
    session_id = request.path_params["session_id"]
    with registry_of(request).db.read() as conn:
        calls = session_calls(conn, session.actor.project.id, session_id)
    turns = [{"call": call, "messages": _messages(call)} for call in calls]
    return render(
        request, session, "session.html", current="traces", session_id=session_id, turns=turns
    )


def _messages(call: Mapping[str, Any]) -> list[dict[str, str]]:
    """The call's messages and its answer as text, as far as the content policy logged
    them (an empty list when it logged none)."""
    shown = []
    for message in call.get("request_content") or []:
        if isinstance(message, dict):
            shown.append(
                {"role": str(message.get("role", "")), "text": _text(message.get("content"))}
            )
    answer = call.get("response_content")
    if isinstance(answer, dict):  # the assistant's message as the gateway recorded it
        text = _text(answer.get("content"))
        if answer.get("tool_calls"):
            text += ("\n" if text else "") + json.dumps(answer["tool_calls"], indent=1)
        shown.append({"role": "answer", "text": text})
    return shown


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _timings(call: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    return [
        ("time to first token", call.get("ttft_ms")),
        ("upstream", call.get("upstream_ms")),
        ("guards", call.get("guard_ms")),
        ("retrieval", call.get("retrieval_ms")),
        ("total", call.get("latency_ms")),
    ]


register(
    Page(
        "traces",
        "Traces",
        20,
        [
            Route("/traces", trace_list),
            Route("/traces/{request_id}", trace_detail),
            Route("/sessions/{session_id}", session_detail),
        ],
    )
)
