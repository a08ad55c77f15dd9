"""Finding calls: the dashboard's traces list, filtered, sorted and paged on the server.

Every query is scoped to one project and, unless asked otherwise, to a time range, so it
walks the (project, time) index newest first and stops at the page's end: the first page
of a million calls reads about a page of rows. Sorting by cost or latency sorts only the
range's matching calls. Free text matches the logged messages (as the project's content
policy logged them), case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, func, or_, select

from seamline.core.clock import as_utc, isoformat
from seamline.core.errors import InvalidInput
from seamline.store.schema import events

LIST_COLUMNS = (
    "request_id",
    "time",
    "status",
    "error_type",
    "model_used",
    "prompt_name",
    "prompt_version",
    "arm",
    "user_id",
    "session_id",
    "use_case",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
)
_VERSION = re.compile(r"[0-9]{1,9}")
SORTS = {"time": events.c.time, "cost": events.c.cost_usd, "latency": events.c.latency_ms}


@dataclass(frozen=True)
class CallFilter:
    start: datetime | None = None
    end: datetime | None = None
    status: str | None = None
    model: str | None = None
    prompt: str | None = None  # NAME or NAME@VERSION
    arm: str | None = None
    user: str | None = None
    session: str | None = None
    use_case: str | None = None
    min_cost_usd: float | None = None
    min_latency_ms: float | None = None
    text: str | None = None

    def conditions(self, project_id: int) -> list[Any]:
        c = events.c
        found: list[Any] = [c.project_id == project_id]
        if self.start is not None:
            found.append(c.time >= self.start)
        if self.end is not None:
            found.append(c.time < self.end)
        for column, value in (
            (c.status, self.status),
            (c.model_used, self.model),
            (c.arm, self.arm),
            (c.user_id, self.user),
            (c.session_id, self.session),
            (c.use_case, self.use_case),
        ):
            if value:
                found.append(column == value)
        if self.prompt:
            name, _, version = self.prompt.partition("@")
            found.append(c.prompt_name == name)
            if version:
                if not _VERSION.fullmatch(version):
                    raise InvalidInput(
                        f"prompt version {version!r} is not a version number", param="prompt"
                    )
                found.append(c.prompt_version == int(version))
        if self.min_cost_usd is not None:
            found.append(c.cost_usd >= self.min_cost_usd)
        if self.min_latency_ms is not None:
            found.append(c.latency_ms >= self.min_latency_ms)
        if self.text:
            pattern = f"%{_escaped(self.text.lower())}%"
            found.append(
                or_(
                    *(
                        func.lower(cast(column, String)).like(pattern, escape="\\")
                        for column in (c.request_content, c.response_content, c.prompt_variables)
                    )
                )
            )
        return found


def search(
    conn: Connection,
    project_id: int,
    where: CallFilter,
    *,
    sort: str = "time",
    descending: bool = True,
    page: int = 1,
    size: int = 50,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the project's matching calls and whether more follow."""
    if sort not in SORTS:
        raise InvalidInput(f"cannot sort by {sort!r}: use {', '.join(SORTS)}", param="sort")
    key = SORTS[sort]
    # Ties by id (the index's own order for time): pages neither repeat nor skip a call.
    order = [key.desc() if descending else key.asc()]
    order.append(events.c.id.desc() if descending else events.c.id.asc())
    query = (
        select(*(events.c[name] for name in LIST_COLUMNS))
        .where(*where.conditions(project_id))
        .order_by(*order)
        .offset((page - 1) * size)
        .limit(size + 1)
    )
    rows = [dict(row) for row in conn.execute(query).mappings()]
    for row in rows:
        row["time"] = isoformat(as_utc(row["time"]))
    return rows[:size], len(rows) > size


def session_calls(conn: Connection, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """A session's calls in order: the conversation as the calls recorded it."""
    rows = conn.execute(
        select(events)
        .where(events.c.project_id == project_id, events.c.session_id == session_id)
        .order_by(events.c.time, events.c.id)
        .limit(500)
    ).mappings()
    found = []
    for row in rows:
        record = dict(row)
        record["time"] = isoformat(as_utc(record["time"]))
        found.append(record)
    return found


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def guard_activity(
    conn: Connection, project_id: int, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """What the guards did in ``[start, end)``: per policy version, detector, finding and
    action (and whether it was enforced or only recorded in shadow mode), how many times
    and on how many calls. Reads the range's events that carry guard actions."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    query = select(events.c.guard_actions).where(
        events.c.project_id == project_id,
        events.c.time >= start,
        events.c.time < end,
        events.c.guard_actions.is_not(None),
    )
    for (actions,) in conn.execute(query):
        seen = set()
        for action in actions if isinstance(actions, list) else []:
            if not isinstance(action, dict):
                continue
            key = tuple(
                action.get(name) for name in ("policy", "detector", "label", "action", "enforced")
            )
            found = counts.setdefault(key, [0, 0])
            found[0] += 1
            if key not in seen:
                found[1] += 1
                seen.add(key)
    rows = [
        dict(zip(("policy", "detector", "label", "action", "enforced"), key, strict=True))
        | {"findings": total, "calls": calls}
        for key, (total, calls) in counts.items()
    ]
    return sorted(rows, key=lambda row: -row["calls"])
