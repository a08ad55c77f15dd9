"""Failure patterns: the calls that went wrong in a window (failed, blocked by a guard,
scored down by users or by online quality, or blamed on a RAG stage), grouped by what they
asked into named patterns, so a team reads five patterns instead of five hundred calls.

A pattern is a cluster of the failed calls' inputs (MiniLM vectors, spherical k-means as
drift's topics use), named by its most distinctive words against all failed calls, with
the kinds of failure in it, its count in each half of the window (its trend) and example
calls. Calls whose content is not logged are grouped by their kind of failure alone.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from seamline.core.clock import as_utc
from seamline.evals.coverage import input_text
from seamline.monitoring.drift import distinctive, kmeans, words_of
from seamline.store.schema import call_scores, events, feedback, rag_assessments

Embed = Callable[[list[str]], Any]
LOW_SCORE = 0.3  # an online score under this counts as a failure
EXAMPLES = 3
MAX_PATTERNS = 8


@dataclass
class Failure:
    request_id: str
    time: datetime
    kinds: set[str] = field(default_factory=set)
    text: str | None = None


@dataclass
class Pattern:
    name: str
    calls: int
    kinds: dict[str, int]
    first_half: int
    second_half: int
    examples: list[dict[str, str]]

    def as_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


def failures(conn: Connection, project_id: int, start: datetime, end: datetime) -> list[Failure]:
    """Every call of the window that went wrong, with every way it did."""
    found: dict[str, Failure] = {}

    def add(request_id: str, when: datetime, kind: str) -> None:
        found.setdefault(request_id, Failure(request_id, as_utc(when))).kinds.add(kind)

    window = and_(events.c.project_id == project_id, events.c.time >= start, events.c.time < end)
    failed = select(events.c.request_id, events.c.time, events.c.status, events.c.error_type)
    for request_id, when, status, error_type in conn.execute(
        failed.where(window, events.c.status != "ok", events.c.parent_request_id.is_(None))
    ):
        add(request_id, when, f"{status}:{error_type or '-'}")
    said = (
        select(feedback.c.request_id, events.c.time, feedback.c.metric, feedback.c.value)
        .join(
            events,
            and_(
                events.c.request_id == feedback.c.request_id,
                events.c.project_id == feedback.c.project_id,
            ),
        )
        .where(window)
    )
    for request_id, when, metric, value in conn.execute(said):
        if (metric == "thumbs" and value < 0.5) or (metric == "rating" and value <= 2):
            add(request_id, when, f"feedback:{metric}")
    low = select(call_scores.c.request_id, call_scores.c.time, call_scores.c.metric).where(
        call_scores.c.project_id == project_id,
        call_scores.c.time >= start,
        call_scores.c.time < end,
        call_scores.c.value < LOW_SCORE,
    )
    for request_id, when, metric in conn.execute(low):
        add(request_id, when, f"low:{metric}")
    blamed = select(
        rag_assessments.c.request_id, rag_assessments.c.time, rag_assessments.c.attribution
    ).where(
        rag_assessments.c.project_id == project_id,
        rag_assessments.c.time >= start,
        rag_assessments.c.time < end,
        rag_assessments.c.attribution != "ok",
    )
    for request_id, when, attribution in conn.execute(blamed):
        add(request_id, when, f"rag:{attribution}")
    ids = list(found)
    for first in range(0, len(ids), 500):
        logged = select(
            events.c.request_id, events.c.prompt_variables, events.c.request_content
        ).where(
            events.c.project_id == project_id, events.c.request_id.in_(ids[first : first + 500])
        )
        for request_id, variables, content in conn.execute(logged):
            messages = content if isinstance(content, list) else None
            found[request_id].text = input_text(variables, messages) or None
    return sorted(found.values(), key=lambda f: f.time)


def patterns(found: list[Failure], embed: Embed, start: datetime, end: datetime) -> list[Pattern]:
    """The failures grouped and named, largest first."""
    middle = as_utc(start) + (as_utc(end) - as_utc(start)) / 2
    with_text = [f for f in found if f.text]
    groups: list[tuple[str, list[Failure]]] = []
    if with_text:
        k = int(min(MAX_PATTERNS, max(1, round(math.sqrt(len(with_text) / 4)))))
        vectors = embed([f.text or "" for f in with_text])
        assignment, _ = kmeans(vectors, k) if k > 1 else ([0] * len(with_text), None)
        words = [words_of(f.text or "") for f in with_text]
        everywhere: Counter[str] = Counter(w for found_words in words for w in found_words)
        members: dict[int, list[int]] = defaultdict(list)
        for i, cluster in enumerate(assignment):
            members[int(cluster)].append(i)
        for rows in members.values():
            here: Counter[str] = Counter(w for i in rows for w in words[i])
            name = ", ".join(distinctive(here, everywhere)) or "(no distinctive words)"
            groups.append((name, [with_text[i] for i in rows]))
    by_kind: dict[str, list[Failure]] = defaultdict(list)
    for failure in found:
        if not failure.text:
            by_kind[sorted(failure.kinds)[0]].append(failure)
    groups += [(f"(content not logged) {kind}", calls) for kind, calls in by_kind.items()]
    made = [_pattern(name, calls, middle) for name, calls in groups]
    return sorted(made, key=lambda p: -p.calls)


def _pattern(name: str, calls: Iterable[Failure], middle: datetime) -> Pattern:
    calls = list(calls)
    kinds: Counter[str] = Counter(kind for call in calls for kind in call.kinds)
    return Pattern(
        name,
        len(calls),
        dict(kinds.most_common()),
        sum(1 for c in calls if c.time < middle),
        sum(1 for c in calls if c.time >= middle),
        [{"request_id": c.request_id, "input": (c.text or "")[:160]} for c in calls[-EXAMPLES:]],
    )
