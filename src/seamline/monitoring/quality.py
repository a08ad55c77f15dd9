"""Online quality: a share of live calls scored off the request path with the eval
harness's own scorers (``answer_relevance`` by default; per prompt any scorer the harness
builds from its settings: ``json_valid``, ``json_schema``, ``contains``, ``similarity``,
``length``...), the scores attached to the call by its request id, like feedback.

The report gives, per prompt version and metric, the mean with its bootstrap interval, and
for a prompt with a canary, canary against control on the same metric: two arms are
different calls, so the comparison is of independent groups (the difference of means with
its interval, and a permutation p-value that the canary is worse), not the paired test of
an eval run on fixed cases.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from seamline.core.background import BackgroundQueue
from seamline.core.clock import as_utc, isoformat
from seamline.evals.scoring import Answer, Case, ScoreError, build_scorer
from seamline.evals.stats import compare_groups, mean_interval
from seamline.store.database import Database
from seamline.store.schema import call_scores

log = logging.getLogger("seamline.monitoring")
ONLINE = "online"
MIN_PER_ARM = 10  # scores per arm before canary and control are compared
CANARY, CONTROL = "canary", "control"


@dataclass(frozen=True)
class QualitySample:
    request_id: str
    project_id: int
    time: datetime
    prompt_name: str | None
    prompt_version: int | None
    arm: str | None
    variables: Mapping[str, Any]
    messages: tuple[Mapping[str, Any], ...]
    answer: str
    scorers: tuple[Mapping[str, Any], ...]
    keep_reasons: bool = True  # a scorer's reason may quote the answer: kept as content is


class CallScores:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep ``rows``; a score already kept for the call and metric stays as it was."""
        for row in rows:
            try:
                with self.db.write() as conn:
                    conn.execute(insert(call_scores).values(**row))
            except IntegrityError:
                continue

    def of_call(self, project_id: int, request_id: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(call_scores.c.metric, call_scores.c.value, call_scores.c.reason)
                .where(
                    call_scores.c.project_id == project_id,
                    call_scores.c.request_id == request_id,
                )
                .order_by(call_scores.c.metric)
            ).mappings()
            return [dict(row) for row in rows]

    def report(self, project_id: int, since: datetime, prompt: str | None = None) -> QualityReport:
        query = select(
            call_scores.c.prompt_name,
            call_scores.c.prompt_version,
            call_scores.c.arm,
            call_scores.c.metric,
            call_scores.c.value,
        ).where(call_scores.c.project_id == project_id, call_scores.c.time >= since)
        if prompt is not None:
            query = query.where(call_scores.c.prompt_name == prompt)
        report = QualityReport(isoformat(as_utc(since)))
        with self.db.read() as conn:
            for row in conn.execute(query):
                ref = f"{row.prompt_name}@{row.prompt_version}" if row.prompt_name else "-"
                report.by_version[(ref, row.metric)].append(row.value)
                if row.prompt_name and row.arm in (CANARY, CONTROL):
                    report.by_arm[(row.prompt_name, row.metric, row.arm)].append(row.value)
        return report


@dataclass
class QualityReport:
    since: str
    by_version: dict[tuple[str, str], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    by_arm: dict[tuple[str, str, str], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def as_record(self) -> dict[str, Any]:
        versions = [
            {"prompt": ref, "metric": metric, **mean_interval(values).as_record()}
            for (ref, metric), values in sorted(self.by_version.items())
        ]
        canaries = []
        for prompt, metric in sorted({(p, m) for p, m, _ in self.by_arm}):
            canary = self.by_arm.get((prompt, metric, CANARY), [])
            control = self.by_arm.get((prompt, metric, CONTROL), [])
            if min(len(canary), len(control)) < MIN_PER_ARM:
                continue
            compared = compare_groups(canary, control)
            canaries.append(
                {
                    "prompt": prompt,
                    "metric": metric,
                    "canary": len(canary),
                    "control": len(control),
                    "difference": compared.difference.as_record(),
                    "p_worse": round(compared.p_worse, 4),
                }
            )
        return {"since": self.since, "versions": versions, "canary_vs_control": canaries}


class QualityScorer:
    """Scores queued samples on a thread of its own and keeps the scores."""

    def __init__(
        self, scores: CallScores, *, max_queue: int = 1000, per_second: float | None = None
    ) -> None:
        self.scores = scores
        self.queue: BackgroundQueue[QualitySample] = BackgroundQueue(
            self._score_batch,
            name="seamline-quality-scorer",
            max_queue=max_queue,
            max_batch=16,
            per_second=per_second,
        )

    def _score_batch(self, samples: list[QualitySample]) -> None:
        rows = []
        for sample in samples:
            case = Case(id=sample.request_id, variables=sample.variables, messages=sample.messages)
            for spec in sample.scorers:
                try:
                    scorer = build_scorer(spec)
                    score = scorer.score(case, Answer(sample.answer))
                except (ScoreError, ValueError) as exc:  # a scorer that cannot judge this call
                    log.debug("online %s on %s: %s", spec, sample.request_id, exc)
                    continue
                rows.append(
                    {
                        "request_id": sample.request_id,
                        "metric": scorer.name[:100],
                        "source": ONLINE,
                        "project_id": sample.project_id,
                        "time": sample.time,
                        "prompt_name": sample.prompt_name,
                        "prompt_version": sample.prompt_version,
                        "arm": sample.arm,
                        "value": float(score.value),
                        "reason": (score.reason[:300] or None) if sample.keep_reasons else None,
                    }
                )
        self.scores.record(rows)
