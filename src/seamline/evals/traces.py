"""Eval cases from production: calls sampled from the events table, each turned into a case
with the inputs the call really had (its prompt variables and the caller's own messages),
so an eval set grows from what users ask rather than from what its authors imagined.

The project's content-logging policy decides what there is to take: a call logged without
content (policy ``none``) cannot become a case and is counted as skipped; a call logged
``redacted`` gives a case with the same masks the traces show. The gateway's own side
calls (shadows, judges) and eval runs' calls are never sampled. Sampling is seeded, so the
same filters and seed pick the same calls.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from seamline.core.canonical import content_hash
from seamline.evals.calls import EVAL_USE_CASES
from seamline.store.schema import events

# The most recent matching calls a sample is drawn from.
CANDIDATES = 10_000


@dataclass(frozen=True)
class TraceFilter:
    prompt: str | None = None
    version: int | None = None
    use_case: str | None = None
    status: str | None = None
    model: str | None = None
    since: datetime | None = None


@dataclass
class Sampled:
    cases: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why, and how many

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def case_input_key(case: Mapping[str, Any]) -> str:
    """Two cases with the same inputs are the same test, whatever their ids."""
    return content_hash({"v": case.get("variables") or {}, "m": case.get("messages") or []})


def sample_cases(
    conn: Connection,
    project_id: int,
    where: TraceFilter,
    *,
    limit: int,
    seed: int = 0,
    prompt_messages: Callable[[str, int], int] = lambda name, version: 0,
    known: Iterable[Mapping[str, Any]] = (),
    answers_as_reference: bool = False,
) -> Sampled:
    """Up to ``limit`` new cases (inputs not among ``known``) from calls matching ``where``.
    ``prompt_messages(name, version)`` says how many leading messages a prompt version
    rendered: those come from the template, the rest are the caller's own."""
    query = select(events).where(
        events.c.project_id == project_id,
        events.c.parent_request_id.is_(None),
        events.c.use_case.is_(None) | events.c.use_case.notin_(EVAL_USE_CASES),
    )
    for column, value in (
        (events.c.prompt_name, where.prompt),
        (events.c.prompt_version, where.version),
        (events.c.use_case, where.use_case),
        (events.c.status, where.status),
        (events.c.model_requested, where.model),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(events.c.time >= where.since)
    rows = conn.execute(query.order_by(events.c.id.desc()).limit(CANDIDATES)).mappings().all()
    found = Sampled(matched=len(rows))
    seen = {case_input_key(case) for case in known}
    for row in random.Random(seed).sample(list(rows), len(rows)):
        if len(found.cases) >= limit:
            break
        case = case_of_call(row, prompt_messages, answers_as_reference)
        if isinstance(case, str):
            found.skip(case)
            continue
        key = case_input_key(case)
        if key in seen:
            found.skip("same inputs as a case already in the set")
            continue
        seen.add(key)
        found.cases.append(case)
    return found


def case_of_call(
    row: RowMapping,
    prompt_messages: Callable[[str, int], int],
    answers_as_reference: bool,
) -> dict[str, Any] | str:
    """The case a call makes, or why it makes none."""
    messages = row["request_content"]
    if not isinstance(messages, list):
        return "content not logged (the project's content policy)"
    variables = row["prompt_variables"] or {}
    if row["prompt_name"] is not None:
        messages = messages[prompt_messages(row["prompt_name"], row["prompt_version"]) :]
    if not variables and not messages:
        return "no inputs logged (a call made before variables were recorded)"
    case: dict[str, Any] = {
        "id": f"trace-{row['request_id']}"[:200],
        "tags": ["from-traces", f"status:{row['status']}"],
    }
    if variables:
        case["variables"] = variables
    if messages:
        case["messages"] = messages
    response = row["response_content"]
    answer = response.get("content") if isinstance(response, dict) else None
    if answers_as_reference and isinstance(answer, str) and answer:
        case["reference"] = answer
    return case
