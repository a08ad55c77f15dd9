"""Eval runs as stored: what ran (the exact prompt, model, eval-set, scorer and judge
versions an auditor asks about), each case's scores as it finished, and the gate report.

Cases are written one by one, so a run stopped half-way keeps what it did and
``seamline evals run --resume RUN`` scores only the rest. The ``production`` gate reads the
finished runs (``registry.gate.RecordedRunsGate``); every read and write is scoped to one
project.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, insert, select, update

from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import NotFound
from seamline.store.database import Database
from seamline.store.schema import eval_run_cases, eval_runs

RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"


@dataclass(frozen=True)
class RunSubject:
    """The versions a run measures."""

    prompt_name: str
    prompt_version: int
    prompt_hash: str
    model: str
    eval_set_name: str
    eval_set_version: int

    @property
    def prompt_ref(self) -> str:
        return f"{self.prompt_name}@{self.prompt_version}"

    @property
    def eval_set_ref(self) -> str:
        return f"{self.eval_set_name}@{self.eval_set_version}"


@dataclass
class CaseResult:
    """One case as a run scored it. ``error`` is the whole case's; ``metric_errors`` name
    the scorers that could not score it."""

    case_id: str
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    metric_errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    output: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    kept: bool = False

    def as_row(self) -> dict[str, Any]:
        """The report's row (``evals.report``): scores by metric, and what failed."""
        row: dict[str, Any] = {"id": self.case_id, "scores": dict(self.scores)}
        if self.error:
            row["error"] = self.error
        if self.metric_errors:
            row["metric_errors"] = dict(self.metric_errors)
        return row


@dataclass(frozen=True)
class StoredRun:
    id: str
    subject: RunSubject
    status: str
    passed: bool | None
    definition: dict[str, Any]
    report: dict[str, Any] | None
    baseline_run_id: str | None
    cases_total: int
    cases_errored: int | None
    cost_usd: float
    created_by: str
    created_at: datetime
    finished_at: datetime | None

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.subject.prompt_ref,
            "prompt_hash": self.subject.prompt_hash,
            "model": self.subject.model,
            "eval_set": self.subject.eval_set_ref,
            "status": self.status,
            "passed": self.passed,
            "baseline_run_id": self.baseline_run_id,
            "cases_total": self.cases_total,
            "cases_errored": self.cases_errored,
            "cost_usd": self.cost_usd,
            "created_by": self.created_by,
            "created_at": isoformat(self.created_at),
            "finished_at": isoformat(self.finished_at) if self.finished_at else None,
            "verdict_after_s": self.verdict_after_s,
            "definition": self.definition,
        }

    @property
    def verdict_after_s(self) -> float | None:
        """For a run started by a change (``seamline evals watch``): the seconds from the
        change to this run's verdict."""
        trigger = self.definition.get("trigger") or {}
        if not trigger.get("changed_at") or self.finished_at is None:
            return None
        changed = datetime.fromisoformat(str(trigger["changed_at"]).replace("Z", "+00:00"))
        return round((as_utc(self.finished_at) - as_utc(changed)).total_seconds(), 3)


class RunStore:
    """One project's eval runs."""

    def __init__(self, db: Database, project_id: int) -> None:
        self.db = db
        self.project_id = project_id

    def create(
        self,
        subject: RunSubject,
        definition: Mapping[str, Any],
        *,
        cases_total: int,
        created_by: str,
        baseline_run_id: str | None = None,
    ) -> str:
        run_id = f"run_{secrets.token_hex(6)}"
        with self.db.write() as conn:
            conn.execute(
                insert(eval_runs).values(
                    id=run_id,
                    project_id=self.project_id,
                    **asdict(subject),
                    baseline_run_id=baseline_run_id,
                    status=RUNNING,
                    definition=dict(definition),
                    cases_total=cases_total,
                    cost_usd=0.0,
                    created_by=created_by,
                    created_at=utcnow(),
                )
            )
        return run_id

    def add_case(self, run_id: str, result: CaseResult) -> None:
        with self.db.write() as conn:
            conn.execute(
                insert(eval_run_cases).values(run_id=run_id, **asdict(result), created_at=utcnow())
            )

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        cost_usd: float,
        report: Mapping[str, Any] | None = None,
        passed: bool | None = None,
        cases_errored: int | None = None,
    ) -> None:
        self._update(
            run_id,
            status=status,
            cost_usd=cost_usd,
            report=dict(report) if report is not None else None,
            passed=passed,
            cases_errored=cases_errored,
            finished_at=utcnow(),
        )

    def _update(self, run_id: str, **values: Any) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(eval_runs)
                .where(eval_runs.c.id == run_id, eval_runs.c.project_id == self.project_id)
                .values(**values)
            )

    def get(self, run_id: str) -> StoredRun:
        with self.db.read() as conn:
            row = (
                conn.execute(
                    select(eval_runs).where(
                        eval_runs.c.id == run_id, eval_runs.c.project_id == self.project_id
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no eval run {run_id!r} in this project", code="run_not_found")
        return _stored(row)

    def cases(self, run_id: str) -> dict[str, CaseResult]:
        """The cases a run has finished, by id (none of another project's runs)."""
        query = (
            select(eval_run_cases)
            .join(eval_runs, eval_runs.c.id == eval_run_cases.c.run_id)
            .where(eval_runs.c.id == run_id, eval_runs.c.project_id == self.project_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        names = [f.name for f in fields(CaseResult)]
        return {row["case_id"]: CaseResult(**{n: row[n] for n in names}) for row in rows}

    def latest(
        self,
        *,
        prompt_name: str | None = None,
        prompt_hash: str | None = None,
        eval_set: RunSubject | None = None,
        definition_key: str | None = None,
        limit: int = 50,
    ) -> list[StoredRun]:
        """Finished-or-not runs, newest first, narrowed by prompt, content, eval-set version
        and the definition's ``key`` (runs that scored the same way)."""
        query = select(eval_runs).where(eval_runs.c.project_id == self.project_id)
        if prompt_name is not None:
            query = query.where(eval_runs.c.prompt_name == prompt_name)
        if prompt_hash is not None:
            query = query.where(eval_runs.c.prompt_hash == prompt_hash)
        if eval_set is not None:
            query = query.where(
                eval_runs.c.eval_set_name == eval_set.eval_set_name,
                eval_runs.c.eval_set_version == eval_set.eval_set_version,
            )
        query = query.order_by(eval_runs.c.created_at.desc()).limit(limit)
        with self.db.read() as conn:
            runs = [_stored(row) for row in conn.execute(query).mappings().all()]
        if definition_key is not None:
            runs = [run for run in runs if run.definition.get("key") == definition_key]
        return runs


def _stored(row: RowMapping) -> StoredRun:
    return StoredRun(
        id=row["id"],
        subject=RunSubject(**{f.name: row[f.name] for f in fields(RunSubject)}),
        status=row["status"],
        passed=row["passed"],
        definition=dict(row["definition"]),
        report=row["report"],
        baseline_run_id=row["baseline_run_id"],
        cases_total=row["cases_total"],
        cases_errored=row["cases_errored"],
        cost_usd=row["cost_usd"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )
