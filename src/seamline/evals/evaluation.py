"""An eval run as ``seamline evals run`` makes it: a prompt version against an eval set, next
to its baseline (the version behind ``production`` by default), gated, stored.

The baseline is scored on the same cases by the same scorers. A finished run of the
baseline's exact content on the same eval-set version, scored the same way, is reused;
otherwise the baseline is run too (its answers are kept like any others, so it is paid for
once). The gate's conditions are the prompt's ``gate`` block, practice's defaults for the
RAG metrics it does not set (:data:`DEFAULT_MINIMUMS`), no significant regression against
the baseline beyond ``tolerance``, and the errored-cases cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput, NotFound, SeamlineError
from seamline.evals.cache import KeptAnswers, OutputCache
from seamline.evals.calibration import Calibration, CalibrationStore, calibrate, read_labels
from seamline.evals.calls import ModelCall
from seamline.evals.conditions import MAX_ERROR_SHARE, ConditionResult, calibrated
from seamline.evals.report import GateReport, gate_report
from seamline.evals.runner import Estimate, RunDefinitionError, Runner
from seamline.evals.runs import (
    FINISHED,
    INTERRUPTED,
    CaseResult,
    RunStore,
    RunSubject,
    StoredRun,
)
from seamline.evals.scorers.pairwise import FLIPPED, Pairwise
from seamline.evals.scorers.rubric import Rubric
from seamline.evals.stats import Interval
from seamline.registry import Actor, Registry
from seamline.registry.eval_set import EvalSetSpec
from seamline.registry.prompt import Prompt

PROMPT, EVAL_SET = "prompt", "eval_set"
PRODUCTION = "production"
# Thresholds from practice for the RAG metrics, used when a prompt's gate does not set them.
DEFAULT_MINIMUMS = {
    "faithfulness": 0.88,
    "answer_relevance": 0.85,
    "context_precision": 0.80,
    "context_recall": 0.82,
}
# Per-case figures a gate may bound (``max: {cost_usd: 0.002}``) besides the scorers'.
BUDGET_METRICS = ("cost_usd", "latency_ms")


@dataclass(frozen=True)
class RunRequest:
    prompt: str  # NAME@VERSION (or NAME@ALIAS, NAME for the latest)
    eval_set: str | None = None  # NAME[@VERSION]; None: the one the prompt names
    against: str | None = PRODUCTION  # the baseline alias; None: no baseline
    model: str | None = None  # instead of the one the prompt names
    concurrency: int = 8
    max_cost: float | None = None
    refresh: bool = False  # ask again instead of reading kept answers
    tolerance: float = 0.0
    max_errors: float = MAX_ERROR_SHARE
    # What started the run when it was not a person (``seamline evals watch``): the change
    # and when it happened, so that the time from change to verdict is on record.
    trigger: Mapping[str, Any] | None = None


@dataclass
class Outcome:
    run: StoredRun
    cases: dict[str, CaseResult]
    report: GateReport
    baseline: StoredRun | None = None
    notes: list[str] = field(default_factory=list)  # what a reader should know (no baseline)

    def interval(self, metric: str) -> Interval:
        """The candidate's mean of ``metric`` with its 95% interval."""
        for item in self.report.metrics:
            if item.metric == metric:
                return item.candidate
        raise KeyError(f"no metric {metric!r} in this run")


Progress = Callable[[str, CaseResult], None]  # (which run: "candidate"/"baseline", result)


class Evaluation:
    """Runs for one actor, with models called through ``call``."""

    def __init__(self, registry: Registry, actor: Actor, call: ModelCall) -> None:
        self.registry = registry
        self.actor = actor
        self.store = RunStore(registry.db, actor.project.id)
        self.cache = OutputCache(registry.db, actor.project.id)
        self.call = call

    def prompt(self, name: str, ref: str | int | None) -> Prompt:
        return Prompt.from_record(self.registry.get_version(self.actor, PROMPT, name, ref))

    def eval_set(self, prompt: Prompt, ref: str | None) -> tuple[EvalSetSpec, int]:
        name, _, version = (ref or prompt.spec.eval_set or "").partition("@")
        if not name:
            raise InvalidInput(
                f"prompt {prompt.ref} names no eval_set: pass --set NAME[@VERSION]",
                code="no_eval_set",
            )
        record = self.registry.get_version(self.actor, EVAL_SET, name, version or None)
        return EvalSetSpec.model_validate(record.content), record.number

    def runner(
        self,
        prompt: Prompt,
        eval_set: EvalSetSpec,
        request: RunRequest,
        answers: KeptAnswers,
        scorers: list[dict[str, Any]] | None = None,
    ) -> Runner:
        try:
            return Runner(
                prompt,
                eval_set,
                answers,
                model=request.model,
                concurrency=request.concurrency,
                max_cost=request.max_cost,
                scorers=scorers,
                resolve=self.pinned,
            )
        except RunDefinitionError as exc:
            raise InvalidInput(str(exc), code="invalid_run") from None

    def pinned(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``spec`` with its judge prompt (``prompt: NAME@ALIAS``) pinned to the version it
        resolves to now, with that version's content; ValueError when there is none."""
        ref = spec.get("prompt")
        if not isinstance(ref, str) or "prompt_content" in spec:
            return dict(spec)
        name, _, version = ref.partition("@")
        try:
            record = self.registry.get_version(self.actor, PROMPT, name, version or None)
        except SeamlineError as exc:
            raise ValueError(f"judge prompt {ref}: {exc.message}") from None
        return {
            **spec,
            "prompt": f"{name}@{record.number}",
            "prompt_hash": record.content_hash,
            "prompt_content": record.content,
        }

    async def estimate(self, request: RunRequest) -> Estimate:
        name, _, ref = request.prompt.partition("@")
        prompt = self.prompt(name, ref or None)
        eval_set, _ = self.eval_set(prompt, request.eval_set)
        answers = KeptAnswers(self.call, self.cache, refresh=request.refresh)
        return await self.runner(prompt, eval_set, request, answers).estimate()

    async def run(self, request: RunRequest, progress: Progress | None = None) -> Outcome:
        name, _, ref = request.prompt.partition("@")
        prompt = self.prompt(name, ref or None)
        eval_set, set_version = self.eval_set(prompt, request.eval_set)
        answers = KeptAnswers(self.call, self.cache, refresh=request.refresh)
        runner = self.runner(prompt, eval_set, request, answers)
        baseline, notes = await self._baseline(prompt, eval_set, set_version, request, progress)
        subject = self._subject(prompt, runner, eval_set.name, set_version)
        run_id = self.store.create(
            subject,
            {**runner.definition(), "against": request.against, "trigger": request.trigger},
            cases_total=len(eval_set.cases),
            created_by=self.actor.user,
            baseline_run_id=baseline.id if baseline else None,
        )
        cases = await self._score(
            run_id, runner, "candidate", progress, baseline=self._answers_of(baseline)
        )
        report = self._gate(prompt, runner, cases, baseline, request)
        self._finish(run_id, report, cases, runner)
        notes += position_notes(runner, cases)
        return Outcome(self.store.get(run_id), cases, report, baseline, notes)

    async def resume(self, run_id: str, progress: Progress | None = None) -> Outcome:
        """Finish an interrupted run: the cases it has are kept, the rest are scored."""
        stored = self.store.get(run_id)
        if stored.status == FINISHED:
            raise InvalidInput(f"run {run_id} has finished: nothing to resume")
        subject = stored.subject
        prompt = self.prompt(subject.prompt_name, subject.prompt_version)
        eval_set, _ = self.eval_set(prompt, subject.eval_set_ref)
        definition = stored.definition
        request = RunRequest(
            prompt=subject.prompt_ref,
            eval_set=subject.eval_set_ref,
            against=definition.get("against"),
            model=None if subject.model == prompt.model_name else subject.model,
            concurrency=int(definition.get("concurrency") or 8),
            max_cost=definition.get("max_cost"),
        )
        answers = KeptAnswers(self.call, self.cache)
        runner = self.runner(prompt, eval_set, request, answers, definition.get("scorers"))
        done = self.store.cases(run_id)
        baseline = self.store.get(stored.baseline_run_id) if stored.baseline_run_id else None
        cases = await self._score(
            run_id,
            runner,
            "candidate",
            progress,
            done=done,
            spent=stored.cost_usd,
            baseline=self._answers_of(baseline),
        )
        report = self._gate(prompt, runner, cases, baseline, request)
        self._finish(run_id, report, cases, runner, spent=stored.cost_usd)
        return Outcome(self.store.get(run_id), cases, report, baseline)

    async def calibrate(
        self,
        judge: str,
        labels: Path,
        *,
        model: str | None = None,
        concurrency: int = 8,
        verbosity: bool = False,
    ) -> Calibration:
        """Measure the judge prompt ``judge`` (NAME@VERSION or NAME@ALIAS) on ``model`` (else
        its own) against ``labels``, and store the result with the pinned judge version."""
        try:
            spec = self.pinned({"prompt": judge, "judge": model})
            scorer = Rubric(**spec)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_judge") from None
        answers = KeptAnswers(self.call, self.cache)
        measured = await calibrate(
            scorer,
            spec["prompt"],
            read_labels(labels),
            answers,
            labels=labels,
            concurrency=concurrency,
            verbosity=verbosity,
        )
        stored = CalibrationStore(self.registry.db, self.actor.project.id)
        return replace(measured, id=stored.save(measured, self.actor.user))

    def _answers_of(self, run: StoredRun | None) -> dict[str, str]:
        """A run's answers by case id: what pairwise scorers compare the candidate's with."""
        if run is None:
            return {}
        return {cid: r.output for cid, r in self.store.cases(run.id).items() if r.output}

    def _subject(
        self, prompt: Prompt, runner: Runner, set_name: str, set_version: int
    ) -> RunSubject:
        return RunSubject(
            prompt.name, prompt.version, prompt.content_hash, runner.target, set_name, set_version
        )

    async def _score(
        self,
        run_id: str,
        runner: Runner,
        which: str,
        progress: Progress | None,
        *,
        done: Mapping[str, CaseResult] | None = None,
        spent: float = 0.0,
        baseline: Mapping[str, str] | None = None,
    ) -> dict[str, CaseResult]:
        """Score the run's cases, each stored as it finishes; an interruption leaves the run
        ``interrupted`` with what it did."""
        cases = dict(done or {})

        def finished(result: CaseResult) -> None:
            self.store.add_case(run_id, result)
            cases[result.case_id] = result
            if progress is not None:
                progress(which, result)

        try:
            await runner.run(finished, skip=frozenset(cases), baseline_answers=baseline)
        except (asyncio.CancelledError, KeyboardInterrupt):
            spent += runner.answers.spent_usd
            self.store.finish(run_id, status=INTERRUPTED, cost_usd=spent)
            raise
        return cases

    async def _baseline(
        self,
        prompt: Prompt,
        eval_set: EvalSetSpec,
        set_version: int,
        request: RunRequest,
        progress: Progress | None,
    ) -> tuple[StoredRun | None, list[str]]:
        if request.against is None:
            return None, ["no baseline asked for: thresholds and the errored-cases cap only"]
        try:
            base = self.prompt(prompt.name, request.against)
        except NotFound:
            return None, [f"{prompt.name}@{request.against} does not exist: no baseline"]
        if base.content_hash == prompt.content_hash:
            return None, [f"{prompt.name}@{request.against} is this very version: no baseline"]
        answers = KeptAnswers(self.call, self.cache, refresh=request.refresh)
        runner = self.runner(base, eval_set, request, answers)
        subject = self._subject(base, runner, eval_set.name, set_version)
        key = runner.definition()["key"]
        for earlier in self.store.latest(
            prompt_name=base.name,
            prompt_hash=base.content_hash,
            eval_set=subject,
            definition_key=key,
        ):
            if earlier.status == FINISHED and not request.refresh:
                return earlier, []
        run_id = self.store.create(
            subject,
            {**runner.definition(), "against": None, "baseline_for": prompt.ref},
            cases_total=len(eval_set.cases),
            created_by=self.actor.user,
        )
        cases = await self._score(run_id, runner, "baseline", progress)
        no_baseline = RunRequest(prompt=base.ref, against=None, max_errors=request.max_errors)
        self._finish(run_id, self._gate(base, runner, cases, None, no_baseline), cases, runner)
        return self.store.get(run_id), []

    def _gate(
        self,
        prompt: Prompt,
        runner: Runner,
        cases: Mapping[str, CaseResult],
        baseline: StoredRun | None,
        request: RunRequest,
    ) -> GateReport:
        gate = prompt.spec.gate
        minimums = {m: v for m, v in DEFAULT_MINIMUMS.items() if m in runner.metrics}
        minimums.update(gate.min if gate else {})
        maximums = dict(gate.max) if gate else {}
        rows = {case_id: _row(result) for case_id, result in cases.items()}
        scored = {m for row in rows.values() for m in row["scores"]}
        wanted = runner.metrics + [m for m in BUDGET_METRICS if m in minimums or m in maximums]
        metrics = [m for m in wanted if m in scored]
        theirs = None
        if baseline is not None:
            theirs = {cid: _row(r) for cid, r in self.store.cases(baseline.id).items()}
        report = gate_report(
            rows,
            theirs,
            metrics,
            baseline_name=f"{prompt.name}@{request.against} (v{baseline.subject.prompt_version})"
            if baseline is not None
            else "baseline",
            minimums={m: v for m, v in minimums.items() if m in scored},
            maximums={m: v for m, v in maximums.items() if m in scored},
            tolerance=request.tolerance,
            max_error_share=request.max_errors,
        )
        report.conditions[:0] = self._judges_calibrated(runner)
        for metric in sorted((set(minimums) | set(maximums) | set(wanted)) - scored):
            report.conditions.insert(
                0,
                ConditionResult(
                    f"{metric} is scored",
                    False,
                    f"no case has a score for {metric}"
                    + ("" if metric in wanted else ": no scorer of this eval set reports it"),
                ),
            )
        return report

    def _judges_calibrated(self, runner: Runner) -> list[ConditionResult]:
        """For each judge scorer asking ``min_agreement``, its latest calibration."""
        calibrations = CalibrationStore(self.registry.db, self.actor.project.id)
        found = []
        for item in runner.scorers:
            minimum = item.spec.get("min_agreement")
            if not isinstance(item.scorer, Rubric) or minimum is None:
                continue
            judge = item.scorer
            measured = calibrations.latest(judge.prompt.content_hash, judge.model)
            name = f"{item.spec.get('prompt') or 'built-in'} on {judge.model}"
            found.append(
                calibrated(name, measured.kappa if measured else None, minimum=float(minimum))
            )
        return found

    def _finish(
        self,
        run_id: str,
        report: GateReport,
        cases: Mapping[str, CaseResult],
        runner: Runner,
        *,
        spent: float = 0.0,
    ) -> None:
        upstreams = sorted(runner.upstreams, key=str)
        self.store.finish(
            run_id,
            status=FINISHED,
            cost_usd=spent + runner.answers.spent_usd,
            report={**report.as_record(), "upstream": [list(pair) for pair in upstreams]},
            passed=report.passed,
            cases_errored=sum(1 for r in cases.values() if r.error or r.metric_errors),
        )


def position_notes(runner: Runner, cases: Mapping[str, CaseResult]) -> list[str]:
    """For each pairwise metric, how many comparisons its judge decided by position: the
    position-flip rate, which says how far the judge can be trusted."""
    notes = []
    for item in runner.scorers:
        if not isinstance(item.scorer, Pairwise):
            continue
        reasons = [
            r.reasons.get(item.metric, "") for r in cases.values() if item.metric in r.scores
        ]
        if reasons:
            flipped = sum(reason.startswith(FLIPPED) for reason in reasons)
            notes.append(
                f"{item.metric}: {flipped} of {len(reasons)} comparisons decided by position "
                f"(position-flip rate {flipped / len(reasons):.0%})"
            )
    return notes


def _row(result: CaseResult) -> dict[str, Any]:
    row = result.as_row()
    if result.cost_usd is not None:
        row["scores"]["cost_usd"] = result.cost_usd
    if result.latency_ms is not None:
        row["scores"]["latency_ms"] = result.latency_ms
    return row
