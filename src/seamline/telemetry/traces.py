"""Reading events back: recent calls, one call, and cost grouped by a dimension."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select

from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import InvalidInput, NotFound
from seamline.store.schema import events

GROUPINGS = {
    "project": events.c.project,
    "key": events.c.api_key_id,
    "model": events.c.model_used,
    "prompt": events.c.prompt_name,
    "use_case": events.c.use_case,
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
    conn: Connection, by: str, since: datetime, project_id: int | None
) -> list[dict[str, Any]]:
    """Requests, tokens, cost and errors per value of ``by``; ``project_id`` None spans every
    project (an operator's view, for ``--by project``)."""
    if by not in GROUPINGS:
        raise InvalidInput(f"cannot group by {by!r}: use {', '.join(GROUPINGS)}")
    column = GROUPINGS[by]
    query = (
        select(
            column.label("group"),
            func.count().label("requests"),
            func.sum(case((events.c.status != "ok", 1), else_=0)).label("errors"),
            func.sum(events.c.prompt_tokens).label("prompt_tokens"),
            func.sum(events.c.completion_tokens).label("completion_tokens"),
            func.sum(events.c.cost_usd).label("cost_usd"),
            func.avg(events.c.latency_ms).label("avg_latency_ms"),
        )
        .where(events.c.time >= since)
        .group_by(column)
        .order_by(func.sum(events.c.cost_usd).desc())
    )
    if project_id is not None:
        query = query.where(events.c.project_id == project_id)
    return [
        {
            **dict(row),
            "cost_usd": round(float(row.cost_usd or 0), 8),
            "avg_latency_ms": round(float(row.avg_latency_ms or 0), 1),
        }
        for row in conn.execute(query).mappings()
    ]
