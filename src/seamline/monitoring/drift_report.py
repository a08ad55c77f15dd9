"""``seamline drift report``: per prompt and use case, this window's calls against the
reference window's (by default the window of the same length just before), tested and
explained (``monitoring.drift``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from seamline.core.clock import as_utc, isoformat
from seamline.evals.coverage import input_text
from seamline.monitoring.drift import (
    ALPHA,
    MIN_PER_WINDOW,
    TwoSampleTest,
    holm,
    mmd_test,
    topic_shift,
    topics,
)
from seamline.monitoring.embeddings import CallEmbeddingStore, Window
from seamline.store.database import Database
from seamline.store.schema import events

TEXTS_PER_WINDOW = 200


@dataclass
class GroupDrift:
    prompt: str | None
    use_case: str | None
    reference_calls: int
    current_calls: int
    test: TwoSampleTest | None = None
    adjusted_p: float | None = None
    shift: float | None = None
    topics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.adjusted_p is not None and self.adjusted_p < ALPHA

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "prompt": self.prompt,
            "use_case": self.use_case,
            "reference_calls": self.reference_calls,
            "current_calls": self.current_calls,
            "drifted": self.drifted,
        }
        if self.test is None:
            record["note"] = (
                f"too few calls to test: {self.reference_calls} and {self.current_calls}, "
                f"at least {MIN_PER_WINDOW} in each window needed"
            )
            return record
        return record | {
            "mmd2": round(self.test.mmd2, 6),
            "p_value": round(self.test.p_value, 4),
            "adjusted_p": round(self.adjusted_p or 0.0, 4),
            "tested": [self.test.reference, self.test.current],
            "permutations": self.test.permutations,
            "topic_shift": round(self.shift or 0.0, 4),
            "topics": self.topics,
        }


@dataclass
class DriftReport:
    reference: tuple[str, str]
    current: tuple[str, str]
    groups: list[GroupDrift]

    def as_record(self) -> dict[str, Any]:
        return {
            "reference": {"from": self.reference[0], "to": self.reference[1]},
            "current": {"from": self.current[0], "to": self.current[1]},
            "alpha": ALPHA,
            "groups": [g.as_record() for g in self.groups],
        }


def drift_report(
    db: Database,
    project_id: int,
    reference: tuple[datetime, datetime],
    current: tuple[datetime, datetime],
    *,
    prompt: str | None = None,
    use_case: str | None = None,
) -> DriftReport:
    store = CallEmbeddingStore(db)
    model = store.latest_model(project_id)
    before = store.window(project_id, *reference, prompt=prompt, use_case=use_case, model=model)
    now = store.window(project_id, *current, prompt=prompt, use_case=use_case, model=model)
    groups = []
    for key in sorted(set(before) | set(now), key=lambda k: (k[0] or "", k[1] or "")):
        old, new = before.get(key), now.get(key)
        group = GroupDrift(key[0], key[1], old.total if old else 0, new.total if new else 0)
        if old is not None and new is not None and min(len(old), len(new)) >= MIN_PER_WINDOW:
            group.test = mmd_test(old.vectors, new.vectors)
            found = topics(old.vectors, new.vectors, _texts(db, project_id, old, new))
            group.shift = topic_shift(found)
            totals = (len(old), len(new))
            group.topics = sorted(
                (t.as_record(totals) for t in found), key=lambda t: -abs(t["change"])
            )
        groups.append(group)
    tested = [g for g in groups if g.test is not None]
    for group, adjusted in zip(
        tested, holm([g.test.p_value for g in tested if g.test]), strict=True
    ):
        group.adjusted_p = adjusted
    groups.sort(key=lambda g: (g.adjusted_p is None, g.adjusted_p or 0.0))
    return DriftReport(
        (isoformat(as_utc(reference[0])), isoformat(as_utc(reference[1]))),
        (isoformat(as_utc(current[0])), isoformat(as_utc(current[1]))),
        groups,
    )


def _texts(db: Database, project_id: int, old: Window, new: Window) -> dict[int, str]:
    """What is logged of the inputs of a sample of the pooled calls (``TEXTS_PER_WINDOW``
    of each window, enough to name topics and show examples), by pooled row (reference
    rows first). The windows' rows are in random order already (by request id)."""
    pooled = old.request_ids + new.request_ids
    rows = {
        request_id: i
        for i, request_id in enumerate(pooled)
        if i < TEXTS_PER_WINDOW or len(old) <= i < len(old) + TEXTS_PER_WINDOW
    }
    found: dict[int, str] = {}
    ids = list(rows)
    with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = select(
                events.c.request_id, events.c.prompt_variables, events.c.request_content
            ).where(  # by request id (the unique index), then the project checked
                db.filter_only(events.c.project_id) == project_id,
                events.c.request_id.in_(ids[start : start + 500]),
            )
            for row in conn.execute(query):
                content = row.request_content if isinstance(row.request_content, list) else None
                text = input_text(row.prompt_variables, content)
                if text:
                    found[rows[row.request_id]] = text
    return found
