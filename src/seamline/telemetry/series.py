"""Figures over whole hours from the rollups alone: the dashboard's overview, cost and
prompt pages. Totals, error rates, tokens and cost are exact; latency percentiles come from
the rollups' latency histogram, as Prometheus's ``histogram_quantile`` reads its buckets
(linear within the bucket that holds the percentile), so they are as fine as the buckets:
25, 50, 100, 250 and 500 ms, then 1, 2, 4, 8, 15, 30 and 60 s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from seamline.core.clock import as_utc
from seamline.store.schema import LATENCY_BUCKETS_MS, LATENCY_COLUMNS, event_rollups

DIMENSIONS = ("model_used", "route", "use_case", "api_key_id", "prompt_name", "prompt_version")


@dataclass
class Figures:
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_sum_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))

    def add(self, sums: Sequence[Any]) -> None:
        self.calls += int(sums[0] or 0)
        self.errors += int(sums[1] or 0)
        self.prompt_tokens += int(sums[2] or 0)
        self.completion_tokens += int(sums[3] or 0)
        self.cost_usd += float(sums[4] or 0.0)
        self.latency_sum_ms += float(sums[5] or 0.0)
        for i, count in enumerate(sums[6:]):
            self.buckets[i] += int(count or 0)

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def cost_per_call(self) -> float:
        return self.cost_usd / self.calls if self.calls else 0.0

    def latency(self, quantile: float) -> float | None:
        return latency_quantile(self.buckets, quantile)


def summed(parts: Iterable[Figures]) -> Figures:
    """The figures of several hours or groups together."""
    whole = Figures()
    for part in parts:
        whole.add(
            [
                part.calls,
                part.errors,
                part.prompt_tokens,
                part.completion_tokens,
                part.cost_usd,
                part.latency_sum_ms,
                *part.buckets,
            ]
        )
    return whole


def latency_quantile(buckets: Sequence[int], quantile: float) -> float | None:
    """The latency below which ``quantile`` of the calls fall, from bucket counts (None for
    no calls). Past the last bound there is no upper edge: the last bound is answered."""
    total = sum(buckets)
    if not total:
        return None
    rank = quantile * total
    seen = 0
    low = 0.0
    for count, high in zip(buckets, LATENCY_BUCKETS_MS, strict=False):
        if count and seen + count >= rank:
            return low + (high - low) * (rank - seen) / count
        seen += count
        low = float(high)
    return low


def rollup_totals() -> list[Any]:
    """The sums of rollup rows that make :class:`Figures`' first six fields: calls, errors,
    prompt and completion tokens, cost and summed latency."""
    rollups = event_rollups.c
    return [
        func.sum(rollups.calls),
        func.sum(case((rollups.status != "ok", rollups.calls), else_=0)),
        func.sum(rollups.prompt_tokens),
        func.sum(rollups.completion_tokens),
        func.sum(rollups.cost_usd),
        func.sum(rollups.latency_ms_sum),
    ]


def _sums() -> list[Any]:
    return [*rollup_totals(), *(func.sum(event_rollups.c[name]) for name in LATENCY_COLUMNS)]


def _where(query: Any, project_id: int, start: datetime, end: datetime) -> Any:
    rollups = event_rollups.c
    return query.where(rollups.project_id == project_id, rollups.hour >= start, rollups.hour < end)


def total(conn: Connection, project_id: int, start: datetime, end: datetime) -> Figures:
    figures = Figures()
    row = conn.execute(_where(select(*_sums()), project_id, start, end)).one()
    figures.add(row)
    return figures


def hourly(
    conn: Connection, project_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, Figures]]:
    """The project's figures hour by hour over ``[start, end)`` (hours without calls left
    out)."""
    hour = event_rollups.c.hour
    query = _where(select(hour, *_sums()), project_id, start, end).group_by(hour).order_by(hour)
    series = []
    for row in conn.execute(query):
        figures = Figures()
        figures.add(row[1:])
        series.append((as_utc(row[0]), figures))
    return series


Breakdown = list[tuple[tuple[Any, ...], Figures]]


def breakdown(
    conn: Connection,
    project_id: int,
    start: datetime,
    end: datetime,
    by: Sequence[str],
    *,
    prompt: str | None = None,
) -> Breakdown:
    """The project's figures per value of the ``by`` columns (of :data:`DIMENSIONS`), the
    most expensive first; ``prompt`` keeps one prompt's calls only."""
    return breakdowns(conn, project_id, start, end, {"": by}, prompt=prompt)[""]


def breakdowns(
    conn: Connection,
    project_id: int,
    start: datetime,
    end: datetime,
    views: Mapping[str, Sequence[str]],
    *,
    prompt: str | None = None,
) -> dict[str, Breakdown]:
    """Several breakdowns (each named, by its columns) from one pass over the rollups:
    grouped once by every column any of them needs (a few hundred groups for a project,
    whatever the range), then folded per view. One scan instead of one per view: the
    overview over a week at a million calls read 60,000 rollup rows five times."""
    needed = sorted({name for columns in views.values() for name in columns})
    unknown = set(needed) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"cannot break down by {sorted(unknown)}")
    columns = [event_rollups.c[name] for name in needed]
    query = _where(select(*columns, *_sums()), project_id, start, end).group_by(*columns)
    if prompt is not None:
        query = query.where(event_rollups.c.prompt_name == prompt)
    folded: dict[str, dict[tuple[Any, ...], Figures]] = {view: {} for view in views}
    for row in conn.execute(query):
        values = dict(zip(needed, row[: len(needed)], strict=True))
        sums = row[len(needed) :]
        for view, names in views.items():
            group = tuple(values[name] if values[name] not in ("", 0) else None for name in names)
            folded[view].setdefault(group, Figures()).add(sums)
    return {
        view: sorted(groups.items(), key=lambda item: -item[1].cost_usd)
        for view, groups in folded.items()
    }
