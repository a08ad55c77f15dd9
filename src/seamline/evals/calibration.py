"""How far a judge can be trusted, measured: a judge prompt version and its model grade
labelled items, and their grades are compared with the labels (Cohen's kappa on pass/fail,
Spearman on the 1-5 scores, each with its bootstrap interval). The result is stored with
the judge's version and content hash, and a gate can ask for it (``min_agreement`` on a
``judge`` scorer): a judge nobody measured, or one that disagrees with people, does not
decide a release.

Verbosity bias, by a length-controlled check (``verbosity``): each answer is graded again
padded with sentences that add nothing (a restatement of the question, politeness); a judge
that grades on substance gives the same grade, and the mean change, with its interval,
says how much this one rewards length.

Labels are JSON Lines rows ``{"id", "question", "answer", "reference"?, "contexts"?,
"label": "pass" | "fail", "score"?: 1-5}``. seamline ships 150 (``calibration/``, with how
they were labelled), so calibration works before a team has labelled anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from seamline.core.clock import isoformat, utcnow
from seamline.core.errors import InvalidInput
from seamline.core.jsonl import json_objects
from seamline.evals.agreement import cohen_kappa, spearman, with_interval
from seamline.evals.cache import KeptAnswers
from seamline.evals.runner import ScoringPool
from seamline.evals.scorers.rubric import PASS_GRADE, Rubric
from seamline.evals.scoring import Answer, Case
from seamline.evals.stats import Interval, mean_interval
from seamline.store.database import Database
from seamline.store.schema import judge_calibrations

SHIPPED_LABELS = Path(__file__).parent / "calibration" / "judge_calibration.jsonl"
PASS, FAIL = "pass", "fail"


@dataclass(frozen=True)
class LabelledItem:
    id: str
    case: Case
    answer: str
    label: str  # pass or fail
    score: int | None  # 1-5, when the labeller gave one


def read_labels(path: Path) -> list[LabelledItem]:
    """Labelled items from JSON Lines; InvalidInput names a bad line."""
    items: list[LabelledItem] = []
    for where, row in json_objects(path):
        question, answer, label = row.get("question"), row.get("answer"), row.get("label")
        if not isinstance(question, str) or not isinstance(answer, str):
            raise InvalidInput(f"{where}: a row needs a string 'question' and 'answer'")
        if label not in (PASS, FAIL):
            raise InvalidInput(f'{where}: \'label\' must be "pass" or "fail"')
        score = row.get("score")
        if score is not None and (isinstance(score, bool) or score not in range(1, 6)):
            raise InvalidInput(f"{where}: 'score' must be an integer from 1 to 5")
        contexts = row.get("contexts") or []
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise InvalidInput(f"{where}: 'contexts' must be a list of strings")
        reference = row.get("reference")
        item_id = str(row.get("id") or where)
        case = Case(
            id=item_id,
            variables={"question": question},
            reference=reference if isinstance(reference, str) else None,
            contexts=tuple(contexts),
        )
        items.append(LabelledItem(item_id, case, answer, label, score))
    if not items:
        raise InvalidInput(f"{path}: no labelled item")
    return items


@dataclass(frozen=True)
class Calibration:
    judge_prompt: str
    judge_hash: str
    model: str
    labels: str
    labels_hash: str
    items: int
    errored: int
    kappa: Interval  # judge pass (grade >= 4) against the label
    spearman: Interval | None  # judge grade against the labeller's score, when given
    verbosity: Interval | None = None  # mean grade change when answers are padded
    id: str = ""
    created_at: str = ""

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "judge": self.judge_prompt,
            "judge_hash": self.judge_hash,
            "model": self.model,
            "labels": self.labels,
            "labels_hash": self.labels_hash,
            "items": self.items,
            "errored": self.errored,
            "kappa": self.kappa.as_record(),
            "spearman": self.spearman.as_record() if self.spearman else None,
            "verbosity": self.verbosity.as_record() if self.verbosity else None,
            "created_at": self.created_at,
        }


async def calibrate(
    judge: Rubric,
    judge_prompt: str,
    items: list[LabelledItem],
    answers: KeptAnswers,
    *,
    labels: Path,
    concurrency: int = 8,
    verbosity: bool = False,
) -> Calibration:
    """Grade every item with ``judge`` and measure its agreement with the labels (and, with
    ``verbosity``, its grade change on padded answers). Items the judge could not grade are
    counted, and left out of the agreement."""
    pool = ScoringPool(answers, concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def grade(item: LabelledItem, text: str) -> int | None:
        async with gate:
            try:
                grades, _ = await pool.run(judge.grade, item.case, Answer(text))
            except Exception:  # not a verdict, or the judge's call failed: counted apart
                return None
        return round(sum(grades) / len(grades))

    try:
        grades = await asyncio.gather(*(grade(item, item.answer) for item in items))
        padded = (
            await asyncio.gather(*(grade(item, padded_answer(item)) for item in items))
            if verbosity
            else []
        )
    finally:
        pool.close()
    # padded is empty without ``verbosity``: no pairs, no change measured
    pairs = zip(grades, padded, strict=False)
    changes = [float(p - g) for g, p in pairs if g is not None and p is not None]
    graded = [(item, g) for item, g in zip(items, grades, strict=True) if g is not None]
    if not graded:
        raise InvalidInput(f"{judge.model} graded none of the {len(items)} items")
    kappa = with_interval(
        cohen_kappa,
        [PASS if g >= PASS_GRADE else FAIL for _, g in graded],
        [item.label for item, _ in graded],
    )
    scored = [(item.score, g) for item, g in graded if item.score is not None]
    rho = (
        with_interval(spearman, [g for _, g in scored], [s for s, _ in scored])  # type: ignore[arg-type]
        if len(scored) >= 3
        else None
    )
    return Calibration(
        judge_prompt=judge_prompt,
        judge_hash=judge.prompt.content_hash,
        model=judge.model,
        labels=labels.name,
        labels_hash=hashlib.sha256(labels.read_bytes()).hexdigest(),
        items=len(items),
        errored=len(items) - len(graded),
        kappa=kappa,
        spearman=rho,
        verbosity=mean_interval(changes) if changes else None,
    )


def padded_answer(item: LabelledItem) -> str:
    """The item's answer with sentences that add nothing to it."""
    question = str(item.case.variables.get("question", "")).strip()
    return (
        f"Thank you for your question. You asked: {question} "
        f"Here is my answer. {item.answer} "
        "I hope this helps, and I have tried to be as clear and complete as possible. "
        "Please let me know if there is anything else I can do for you."
    )


class CalibrationStore:
    """One project's judge calibrations."""

    def __init__(self, db: Database, project_id: int) -> None:
        self.db = db
        self.project_id = project_id

    def save(self, calibration: Calibration, created_by: str) -> str:
        calibration_id = f"cal_{secrets.token_hex(6)}"
        record = calibration.as_record()
        with self.db.write() as conn:
            conn.execute(
                insert(judge_calibrations).values(
                    id=calibration_id,
                    project_id=self.project_id,
                    judge_prompt=calibration.judge_prompt,
                    judge_hash=calibration.judge_hash,
                    model=calibration.model,
                    labels=calibration.labels[:300],
                    labels_hash=calibration.labels_hash,
                    items=calibration.items,
                    errored=calibration.errored,
                    agreement={k: record[k] for k in ("kappa", "spearman", "verbosity")},
                    created_by=created_by,
                    created_at=utcnow(),
                )
            )
        return calibration_id

    def latest(self, judge_hash: str, model: str) -> Calibration | None:
        """The newest calibration of this judge content on this model."""
        query = (
            select(judge_calibrations)
            .where(
                judge_calibrations.c.project_id == self.project_id,
                judge_calibrations.c.judge_hash == judge_hash,
                judge_calibrations.c.model == model,
            )
            .order_by(judge_calibrations.c.created_at.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        agreement = row["agreement"]
        return Calibration(
            judge_prompt=row["judge_prompt"],
            judge_hash=row["judge_hash"],
            model=row["model"],
            labels=row["labels"],
            labels_hash=row["labels_hash"],
            items=row["items"],
            errored=row["errored"],
            kappa=_interval(agreement["kappa"]),
            spearman=_interval(agreement["spearman"]) if agreement.get("spearman") else None,
            verbosity=_interval(agreement["verbosity"]) if agreement.get("verbosity") else None,
            id=row["id"],
            created_at=isoformat(row["created_at"]),
        )


def _interval(record: Mapping[str, Any]) -> Interval:
    return Interval(
        record["estimate"], record["low"], record["high"], record["n"], record["confidence"]
    )
