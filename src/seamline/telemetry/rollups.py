"""Hourly rollups of the events, kept as events are written: what ``seamline cost``, the
reports and the dashboard read instead of scanning raw events as they grow.

One row per hour and (project, key, route, prompt version, model, use case, status), with
the calls, tokens, cost, summed latency, a latency histogram and the cache hits of its
events. The writer adds each batch's sums in the same transaction as the batch (``INSERT
... ON CONFLICT DO UPDATE``, on SQLite and PostgreSQL alike), so rollups and events never
disagree; events replayed from the spill file that are stored already are left out of the
sums. Dimensions hold ``""`` or ``0`` rather than NULL, since NULLs never conflict in a
unique key.

A query over a time range reads the rollups of the hours it covers whole and the raw
events of the two partial hours at its ends (:func:`split_hours`).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from seamline.core.clock import as_utc
from seamline.store.schema import LATENCY_BUCKETS_MS, LATENCY_COLUMNS, event_rollups, events
from seamline.telemetry.event import CallEvent

DIMENSIONS = (
    "hour",
    "project_id",
    "api_key_id",
    "route",
    "prompt_name",
    "prompt_version",
    "model_used",
    "use_case",
    "status",
)
MEASURES = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms_sum",
    "cache_hits",
    *LATENCY_COLUMNS,
)
_FIRST_BUCKET = MEASURES.index(LATENCY_COLUMNS[0])
_WIDTHS = {
    name: getattr(event_rollups.c[name].type, "length", None) or 0 for name in DIMENSIONS[2:]
}
_COLUMNS = ", ".join(DIMENSIONS + MEASURES)
_UPSERT = (
    f"INSERT INTO event_rollups ({_COLUMNS}) VALUES ({{}}) "
    f"ON CONFLICT ({', '.join(DIMENSIONS)}) DO UPDATE SET "
    + ", ".join(f"{m} = event_rollups.{m} + excluded.{m}" for m in MEASURES)
)
_POSTGRES_UPSERT = _UPSERT.format(", ".join(["%s"] * (len(DIMENSIONS) + len(MEASURES))))
_SQLITE_UPSERT = _UPSERT.format(", ".join(["?"] * (len(DIMENSIONS) + len(MEASURES))))

Row = dict[str, Any]


def hour_of(when: datetime) -> datetime:
    return as_utc(when).replace(minute=0, second=0, microsecond=0)


def add_to_rollups(
    conn: Connection,
    rows: Sequence[CallEvent | Row],
    *,
    postgres: bool,
    to_time: Callable[[datetime], Any],
) -> None:
    """Add ``rows`` (events just inserted on ``conn``) to their hours' rollups."""
    sums: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        get: Callable[[str], Any] = (
            row.get if isinstance(row, dict) else functools.partial(getattr, row)
        )
        stamp = get("time")
        when: datetime = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
        key = (
            hour_of(when),
            get("project_id") or 0,
            *(_cut(name, get(name)) for name in ("api_key_id", "route", "prompt_name")),
            get("prompt_version") or 0,
            *(_cut(name, get(name)) for name in ("model_used", "use_case", "status")),
        )
        total = sums.setdefault(key, [0, 0, 0, 0.0, 0.0, 0] + [0] * len(LATENCY_COLUMNS))
        latency = get("latency_ms") or 0.0
        total[0] += 1
        total[1] += get("prompt_tokens") or 0
        total[2] += get("completion_tokens") or 0
        total[3] += get("cost_usd") or 0.0
        total[4] += latency
        total[5] += 1 if get("cache_hit") else 0
        total[_FIRST_BUCKET + bisect_left(LATENCY_BUCKETS_MS, latency)] += 1
    # In key order: two workers updating the same hours lock their rows in the same order
    # (in arrival order, PostgreSQL could deadlock them).
    params = [(to_time(key[0]), *key[1:], *total) for key, total in sorted(sums.items())]
    if params:
        conn.exec_driver_sql(_POSTGRES_UPSERT if postgres else _SQLITE_UPSERT, params)


def _cut(name: str, value: Any) -> str:
    text = str(value or "").replace("\x00", "")
    width = _WIDTHS[name]
    return text[:width] if width else text


def not_yet_stored(conn: Connection, rows: Sequence[Row]) -> list[Row]:
    """The spilled rows whose request id is not stored yet (a replay cut short by a crash
    runs again: its first rows must not be counted twice)."""
    ids = [row.get("request_id") for row in rows]
    stored = set(
        conn.execute(select(events.c.request_id).where(events.c.request_id.in_(ids))).scalars()
    )
    return [row for row in rows if row.get("request_id") not in stored]


def split_hours(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole hours inside ``[start, end)``: ``[first, last)``, empty when there are
    none (then ``first == last``, and raw events serve the whole range)."""
    first = hour_of(start) + (
        timedelta(hours=1) if hour_of(start) != as_utc(start) else timedelta()
    )
    last = hour_of(end)
    return (first, last) if first < last else (first, first)
