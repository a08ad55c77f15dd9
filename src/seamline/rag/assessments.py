"""Where live RAG assessments are kept, and the report that reads them back: per prompt and
index, how many scored calls each stage is blamed for, the mean scores, and examples with
their evidence. Every query names the project.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.rag.online import ATTRIBUTIONS, OK, Assessment
from seamline.store.database import Database
from seamline.store.schema import rag_assessments

EXAMPLES_PER_KIND = 3


class Assessments:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, assessment: Assessment) -> None:
        """Keep ``assessment``; a call already assessed keeps its first assessment."""
        sample = assessment.sample
        row = {
            "request_id": sample.request_id,
            "project_id": sample.project_id,
            "time": sample.time,
            "route": sample.route[:100],
            "prompt": sample.prompt,
            "index_version": sample.index[:200],
            "attribution": assessment.attribution,
            "scores": assessment.scores,
            "evidence": assessment.evidence,
            "scored_at": utcnow(),
        }
        try:
            with self.db.write() as conn:
                conn.execute(insert(rag_assessments).values(**row))
        except IntegrityError:
            pass

    def report(
        self,
        project_id: int,
        since: datetime,
        *,
        prompt: str | None = None,
        index: str | None = None,
    ) -> RagReport:
        """The assessments of calls since ``since``, grouped by prompt and index (an index
        named without a version matches all its versions; a prompt likewise)."""
        query = select(rag_assessments).where(
            rag_assessments.c.project_id == project_id, rag_assessments.c.time >= since
        )
        if prompt is not None:
            query = query.where(_named(rag_assessments.c.prompt, prompt))
        if index is not None:
            query = query.where(_named(rag_assessments.c.index_version, index))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(rag_assessments.c.time.desc())).all()
        groups: dict[tuple[str | None, str], ReportGroup] = {}
        for row in rows:
            key = (row.prompt, row.index_version)
            group = groups.setdefault(key, ReportGroup(row.prompt, row.index_version))
            group.add(row._asdict())
        return RagReport(isoformat(as_utc(since)), sorted(groups.values(), key=_by_failures))


def _named(column: Any, reference: str) -> Any:
    if "@" in reference:
        return column == reference
    return column.startswith(f"{reference}@", autoescape=True)


def _by_failures(group: ReportGroup) -> tuple[int, str]:
    return (-group.failures, f"{group.prompt} {group.index}")


@dataclass
class ReportGroup:
    prompt: str | None
    index: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ATTRIBUTIONS, 0))
    _scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, row: dict[str, Any]) -> None:
        kind = row["attribution"]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        for name, value in (row["scores"] or {}).items():
            self._scores[name].append(float(value))
        if kind != OK and len(self.examples[kind]) < EXAMPLES_PER_KIND:
            self.examples[kind].append(
                {
                    "request_id": row["request_id"],
                    "time": isoformat(as_utc(row["time"])),
                    "reason": (row["evidence"] or {}).get("reason", ""),
                    "evidence": row["evidence"],
                }
            )

    @property
    def scored(self) -> int:
        return sum(self.counts.values())

    @property
    def failures(self) -> int:
        return self.scored - self.counts.get(OK, 0)

    @property
    def mean_scores(self) -> dict[str, float]:
        return {name: round(statistics.fmean(v), 4) for name, v in sorted(self._scores.items())}

    def as_record(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "index": self.index,
            "scored": self.scored,
            "counts": self.counts,
            "mean_scores": self.mean_scores,
            "examples": dict(self.examples),
        }


@dataclass
class RagReport:
    since: str
    groups: list[ReportGroup]

    def as_record(self) -> dict[str, Any]:
        return {"since": self.since, "groups": [g.as_record() for g in self.groups]}
