"""The release gate that alias moves consult.

The registry asks a :class:`ReleaseGate` whether a version has a passing eval run before it
moves a gated alias (``production`` by default). :class:`RecordedRunsGate` reads the runs the
eval harness stores (``evals.runs``): a prompt version is released by the latest finished
run of that very content on the eval set the version names. Anything else (no eval set
named, no run, a failed run, a kind that has no eval runs) needs an audited override with a
reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from seamline.store import Database
from seamline.store.schema import eval_runs

PROMPT = "prompt"
FINISHED = "finished"


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateSubject:
    """The version asking to be released."""

    project: str
    kind: str
    name: str
    version: int
    content_hash: str
    eval_set: str | None
    project_id: int | None = None


class ReleaseGate(Protocol):
    def check(self, subject: GateSubject) -> GateVerdict: ...


class RecordedRunsGate:
    """Passes a prompt version whose latest finished run on its own eval set passed."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def check(self, subject: GateSubject) -> GateVerdict:
        what = f"{subject.kind} {subject.name} v{subject.version}"
        if subject.kind != PROMPT:
            return GateVerdict(False, f"no eval run recorded for {what}")
        if not subject.eval_set:
            return GateVerdict(False, f"{what} names no eval_set to be gated on")
        eval_set = subject.eval_set.partition("@")[0]  # gated on the set, at any version
        query = (
            select(eval_runs.c.id, eval_runs.c.passed, eval_runs.c.eval_set_version)
            .where(
                eval_runs.c.project_id == subject.project_id,
                eval_runs.c.prompt_name == subject.name,
                eval_runs.c.prompt_version == subject.version,
                eval_runs.c.prompt_hash == subject.content_hash,
                eval_runs.c.eval_set_name == eval_set,
                eval_runs.c.status == FINISHED,
            )
            .order_by(eval_runs.c.finished_at.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            run = conn.execute(query).first()
        if run is None:
            return GateVerdict(False, f"no eval run recorded for {what} on {eval_set}")
        where = f"{run.id} on {eval_set}@{run.eval_set_version}"
        if not run.passed:
            return GateVerdict(False, f"the latest eval run of {what} failed its gate ({where})")
        return GateVerdict(True, f"passed ({where})")
