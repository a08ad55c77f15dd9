"""Overview: calls, errors, latency percentiles, tokens and cost over the range, hour by
hour, and per model, route, use case, prompt version and key; budget use this period; the
alerts that fired. Everything from the hourly rollups, so it answers as fast at a million
calls as at a thousand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seamline.core.clock import utcnow
from seamline.core.settings import BudgetConfig, Settings
from seamline.monitoring.alerts import AlertStore
from seamline.registry.sessions import Session
from seamline.telemetry import series
from seamline.telemetry.rollups import hour_of
from seamline.ui.pages import Page, register
from seamline.ui.web import page, registry_of, render, time_range

BREAKDOWNS = {
    "model": ("model_used",),
    "route": ("route",),
    "use case": ("use_case",),
    "prompt version": ("prompt_name", "prompt_version"),
    "key": ("api_key_id",),
}


@page
def overview(request: Request, session: Session) -> Response:
    name, start, end = time_range(request.query_params)
    project = session.actor.project
    registry = registry_of(request)
    with registry.db.read() as conn:
        hours = series.hourly(conn, project.id, start, end)
        tables = series.breakdowns(conn, project.id, start, end, BREAKDOWNS)
        budgets = [
            _budget_use(conn, project.id, budget) for budget in _budgets(request, project.name)
        ]
    alerts = AlertStore(registry.db).recent(project.id, start)
    return render(
        request,
        session,
        "overview.html",
        current="overview",
        range_name=name,
        start=start,
        end=end,
        totals=series.summed(figures for _, figures in hours),
        chart=_chart(hours, start, end),
        tables=tables,
        budgets=budgets,
        alerts=alerts[:20],
    )


def _chart(
    hours: list[tuple[datetime, series.Figures]], start: datetime, end: datetime
) -> dict[str, Any]:
    """The hourly series as uPlot reads them (x in Unix seconds, one list per line), every
    hour of the range present: an hour without calls is a zero, not a line drawn across."""
    found = dict(hours)
    every = [start + timedelta(hours=i) for i in range(int((end - start) / timedelta(hours=1)))]
    figures = [found.get(hour) or series.Figures() for hour in every]
    return {
        "x": [int(hour.timestamp()) for hour in every],
        "calls": [f.calls for f in figures],
        "errors": [f.errors for f in figures],
        "cost": [round(f.cost_usd, 6) for f in figures],
        "tokens": [f.prompt_tokens + f.completion_tokens for f in figures],
        "p50": [f.latency(0.5) for f in figures],
        "p95": [f.latency(0.95) for f in figures],
        "p99": [f.latency(0.99) for f in figures],
    }


def _budgets(request: Request, project: str) -> list[BudgetConfig]:
    settings: Settings = request.app.state.settings
    return [b for b in settings.budgets if b.scope == "project" and b.name == project]


def _budget_use(conn: Any, project_id: int, budget: BudgetConfig) -> dict[str, Any]:
    """What the project spent this budget period (UTC day or month) against the cap."""
    now = utcnow()
    start = (
        datetime(now.year, now.month, now.day, tzinfo=UTC)
        if budget.period == "day"
        else datetime(now.year, now.month, 1, tzinfo=UTC)
    )
    spent = series.total(conn, project_id, start, hour_of(now) + timedelta(hours=1)).cost_usd
    return {
        "period": budget.period,
        "limit": budget.limit_usd,
        "spent": spent,
        "share": spent / budget.limit_usd,
        "alert_at": budget.alert_at,
        "mode": budget.mode,
    }


register(Page("overview", "Overview", 10, [Route("/overview", overview)]))
