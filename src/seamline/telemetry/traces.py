"""Reading events back: recent calls, one call, and cost grouped by a dimension."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select

from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import InvalidInput, NotFound
from seamline.store.schema import event_rollups, events, projects
from seamline.telemetry.rollups import split_hours
from seamline.telemetry.series import rollup_totals

GROUPINGS = {
    "project": events.c.project,
    "key": events.c.api_key_id,
    "model": events.c.model_used,
    "prompt": events.c.prompt_name,
    "use_case": events.c.use_case,
    "route": events.c.route,
}
_ROLLUP_COLUMNS = {
    "route": "route",
    "key": "api_key_id",
    "model": "model_used",
    "prompt": "prompt_name",
    "use_case": "use_case",
}
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> datetime:
    """``90s``, ``30m``, ``24h`` or ``7d`` before now."""
    return utcnow() - duration(value)


def duration(value: str) -> timedelta:
    """``90s``, ``30m``, ``24h`` or ``7d`` as a time span."""
    match = _DURATION.match(value.strip())
    if match is None:
        raise InvalidInput(f"invalid duration {value!r}: use e.g. 30m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _row(row: Any) -> dict[str, Any]:
    record = dict(row)
    record["time"] = isoformat(as_utc(record["time"]))
    return record


def recent(conn: Connection, project_id: int, last: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(events)
        .where(events.c.project_id == project_id)
        .order_by(events.c.id.desc())
        .limit(last)
    ).mappings()
    return [_row(row) for row in rows]


def one(conn: Connection, project_id: int, request_id: str) -> dict[str, Any]:
    row = (
        conn.execute(
            select(events).where(
                events.c.project_id == project_id, events.c.request_id == request_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no call {request_id!r} in this project", code="trace_not_found")
    return _row(row)


def cost_by(
    conn: Connection,
    by: str,
    since: datetime,
    project_id: int | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Requests, tokens, cost and errors per value of ``by`` since ``since``; ``project_id``
    None spans every project (an operator's view, for ``--by project``)."""
    totals = sums_by(conn, (by,), since, now or utcnow(), project_id)
    rows = [
        {
            "group": group,
            "requests": int(t[0]),
            "errors": int(t[1]),
            "prompt_tokens": int(t[2]),
            "completion_tokens": int(t[3]),
            "cost_usd": round(t[4], 8),
            "avg_latency_ms": round(t[5] / t[0], 1) if t[0] else 0.0,
        }
        for (group,), t in totals.items()
    ]
    return sorted(rows, key=lambda row: -row["cost_usd"])


Sums = dict[tuple[Any, ...], list[float]]
"""Per group (a value of each grouping asked for, None for none): calls, errors, prompt
tokens, completion tokens, cost and the sum of latencies."""


def sums_by(
    conn: Connection,
    by: Sequence[str],
    start: datetime,
    end: datetime,
    project_id: int | None,
) -> Sums:
    """:data:`Sums` of the calls in ``[start, end)`` grouped by the ``by`` groupings. The
    whole hours of the range come from the hourly rollups, its two partial hours from raw
    events, so a report over a week reads a few thousand rows, not every call."""
    _check(by)
    first, last = split_hours(start, end)
    totals: Sums = {}
    for low, high in ((start, min(first, end)), (last, end)):
        if low < high:
            _add(totals, conn.execute(_raw_sums(by, low, high, project_id)))
    if first < last:
        _add(totals, conn.execute(_rollup_sums(by, first, last, project_id)))
    return totals


def raw_sums_by(
    conn: Connection,
    by: Sequence[str],
    start: datetime,
    end: datetime,
    project_id: int | None,
) -> Sums:
    """:func:`sums_by` from raw events alone: what the rollups are checked and measured
    against."""
    _check(by)
    totals: Sums = {}
    _add(totals, conn.execute(_raw_sums(by, start, end, project_id)))
    return totals


def _check(by: Sequence[str]) -> None:
    for name in by:
        if name not in GROUPINGS:
            raise InvalidInput(f"cannot group by {name!r}: use {', '.join(GROUPINGS)}")


def _add(totals: Sums, rows: Any) -> None:
    width = len(_SUMS)
    for row in rows:
        group = tuple(value or None for value in row[:-width])  # rollups store None as ""
        found = totals.setdefault(group, [0.0] * width)
        for i, value in enumerate(row[-width:]):
            found[i] += float(value or 0)


_SUMS = ("calls", "errors", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms")


def _raw_sums(by: Sequence[str], start: datetime, end: datetime, project_id: int | None) -> Any:
    columns = [GROUPINGS[name] for name in by]
    query = (
        select(
            *columns,
            func.count(),
            func.sum(case((events.c.status != "ok", 1), else_=0)),
            func.sum(events.c.prompt_tokens),
            func.sum(events.c.completion_tokens),
            func.sum(events.c.cost_usd),
            func.sum(events.c.latency_ms),
        )
        .where(events.c.time >= start, events.c.time < end)
        .group_by(*columns)
    )
    return query if project_id is None else query.where(events.c.project_id == project_id)


def _rollup_sums(by: Sequence[str], start: datetime, end: datetime, project_id: int | None) -> Any:
    rollups = event_rollups.c
    columns = [
        projects.c.name if name == "project" else rollups[_ROLLUP_COLUMNS[name]] for name in by
    ]
    query = (
        select(*columns, *rollup_totals())
        .where(rollups.hour >= start, rollups.hour < end)
        .group_by(*columns)
    )
    if "project" in by:
        query = query.select_from(
            event_rollups.outerjoin(projects, projects.c.id == rollups.project_id)
        )
    return query if project_id is None else query.where(rollups.project_id == project_id)


def cost_trajectory(
    conn: Connection,
    by: str,
    since: datetime,
    project_id: int | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Cost per call day by day for each value of ``by``: where spend per query is going, not
    how big a total is. Read from the rollups' whole hours (the partial hours at the ends are
    left out)."""
    _check((by,))
    first, last = split_hours(since, now or utcnow())
    query = _rollup_sums((by,), first, last, project_id).add_columns(event_rollups.c.hour)
    query = query.group_by(event_rollups.c.hour)
    days: dict[tuple[Any, str], list[float]] = {}
    for group, calls, _, _, _, cost, _, hour in conn.execute(query):
        day = as_utc(hour).date().isoformat()
        totals = days.setdefault((group or None, day), [0.0, 0.0])
        totals[0] += float(calls or 0)
        totals[1] += float(cost or 0)
    return [
        {
            "group": group,
            "day": day,
            "requests": int(calls),
            "cost_per_call_usd": round(cost / calls, 8) if calls else 0.0,
        }
        for (group, day), (calls, cost) in sorted(
            days.items(), key=lambda item: (str(item[0][0]), item[0][1])
        )
    ]
