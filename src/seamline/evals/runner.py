"""Running an eval set against a prompt version: every case rendered, asked and scored, under
a concurrency bound and a spending cap, each result handed over as soon as it is known.

What makes a run trustworthy here:

* **Errored cases are apart.** A missing variable, a failed upstream call, ``--max-cost``
  reached: the case's ``error`` says so. A scorer that cannot score a case (no reference, a
  judge answering nonsense, an unknown scorer in the YAML) records its reason for that
  metric. None of these becomes a 0, a NaN or a pass; the gate counts them.
* **Answers are kept** (``evals.cache.KeptAnswers``): a re-run asks nothing and scores the
  same answers, so it gives the same numbers.
* **The spend is bounded before it happens.** Each call not yet kept reserves its upper
  bound (prompt tokens plus ``max_tokens`` of answer at the model's price) against
  ``max_cost``; a call that could pass it is not made, and its case says why. Judges' calls
  count with what they really cost.

Scoring runs on worker threads (scorers are plain functions, and MiniLM and judges block),
while model calls stay on the event loop; a judge asked from a scorer's thread is answered
by the same loop, through the same kept answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from seamline.core.canonical import content_hash
from seamline.core.errors import SeamlineError
from seamline.evals.cache import KeptAnswers
from seamline.evals.calls import JUDGE_USE_CASE, MODEL_USE_CASE, Completion
from seamline.evals.judging import judge_client
from seamline.evals.runs import CaseResult
from seamline.evals.scoring import Answer, Case, ScoreError, Scorer, build_scorer
from seamline.registry.eval_set import EvalCaseSpec, EvalSetSpec
from seamline.registry.prompt import Prompt

T = TypeVar("T")
# How long a scorer's judge may wait for its answer before the metric is errored.
JUDGE_TIMEOUT_S = 300.0


class RunDefinitionError(ValueError):
    """The run cannot start as asked (two scorers report the same metric)."""


@dataclass(frozen=True)
class MetricScorer:
    """A scorer of the eval set under the metric name its results are reported by
    (``metric:`` in the YAML, else the scorer's name); ``problem`` when it could not be
    built, so that every case records the reason for that metric."""

    metric: str
    spec: Mapping[str, Any]
    scorer: Scorer | None
    problem: str | None = None


Resolve = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def metric_scorers(
    specs: Sequence[Mapping[str, Any]], resolve: Resolve = dict
) -> list[MetricScorer]:
    """The scorers of ``specs``, each spec first passed through ``resolve`` (which pins a
    judge prompt's version, or raises ValueError saying why it cannot)."""
    built: list[MetricScorer] = []
    for spec in specs:
        metric = str(spec.get("metric") or spec.get("name"))
        if any(item.metric == metric for item in built):
            raise RunDefinitionError(
                f"two scorers report {metric!r}: name one of them with 'metric:'"
            )
        try:
            resolved = resolve(spec)
            options = {k: v for k, v in resolved.items() if k != "metric"}
            built.append(MetricScorer(metric, resolved, build_scorer(options)))
        except ValueError as exc:  # an unknown scorer, settings it does not take, no prompt
            built.append(MetricScorer(metric, spec, None, str(exc)))
    return built


def judges_of(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The judge models and judge prompt versions the scorers use: part of what a run is,
    for an auditor."""
    found: set[str] = set()
    for spec in specs:
        found.update(str(spec[key]) for key in ("judge", "prompt") if spec.get(key))
    return sorted(found)


def case_of(spec: EvalCaseSpec, baseline_answer: str | None = None) -> Case:
    return Case(
        id=spec.id or "",
        variables=spec.variables,
        messages=tuple(spec.messages or ()),
        reference=spec.reference,
        contexts=tuple(spec.contexts),
        criteria=spec.criteria,
        tags=tuple(spec.tags),
        baseline_answer=baseline_answer,
    )


def request_for(
    prompt: Prompt, case: EvalCaseSpec, model: str | None
) -> tuple[str, dict[str, Any]]:
    """The model and chat body the gateway would send for this case: the prompt rendered with
    the case's variables, then the case's own messages. InvalidInput (a missing or unknown
    variable) when the case does not fit the prompt."""
    rendered = prompt.render(**case.variables)
    chosen = model or rendered.model
    if chosen is None:
        raise RunDefinitionError(f"prompt {prompt.ref} names no model: pass one to run it")
    body: dict[str, Any] = {
        "messages": rendered.messages + list(case.messages or []),
        **rendered.parameters,
    }
    if rendered.tools:
        body["tools"] = rendered.tools
    return chosen, body


@dataclass
class Spending:
    """What the run has spent and holds in reserve against ``cap``."""

    cap: float | None
    reserved: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reserve(self, answers: KeptAnswers, bound: float) -> bool:
        async with self.lock:
            if self.cap is not None and answers.spent_usd + self.reserved + bound > self.cap:
                return False
            self.reserved += bound
            return True

    async def release(self, bound: float) -> None:
        async with self.lock:
            self.reserved -= bound


@dataclass(frozen=True)
class Estimate:
    """Before a run: its cases, how many need a model call, and what those can cost at most
    (judges' calls come on top, and are counted as they happen)."""

    cases: int
    to_ask: int
    prompt_tokens: int
    most_usd: float


class Runner:
    """One eval set against one prompt version, through ``answers``."""

    def __init__(
        self,
        prompt: Prompt,
        eval_set: EvalSetSpec,
        answers: KeptAnswers,
        *,
        model: str | None = None,
        concurrency: int = 8,
        max_cost: float | None = None,
        scorers: Sequence[Mapping[str, Any]] | None = None,
        resolve: Resolve = dict,
    ) -> None:
        self.prompt = prompt
        self.eval_set = eval_set
        self.answers = answers
        self.model = model
        self.concurrency = max(1, concurrency)
        self.spending = Spending(max_cost)
        self.scorers = metric_scorers(eval_set.scorers if scorers is None else scorers, resolve)
        # Which upstream models and builds answered (kept answers included): what
        # ``seamline evals watch`` compares a fresh answer with.
        self.upstreams: set[tuple[str | None, str | None]] = set()

    @property
    def target(self) -> str:
        """The model the cases are asked of."""
        return self.model or self.prompt.model_name or ""

    @property
    def metrics(self) -> list[str]:
        return [item.metric for item in self.scorers]

    def definition(self) -> dict[str, Any]:
        """What the run is, beyond the versions: its scorers and judges, and a key that two
        runs scoring the same way share (a baseline run must match it)."""
        scorers = [dict(item.spec) for item in self.scorers]
        return {
            "scorers": scorers,
            "judges": judges_of(scorers),
            "key": content_hash({"scorers": scorers, "model": self.model}),
            "concurrency": self.concurrency,
            "max_cost": self.spending.cap,
        }

    async def estimate(self) -> Estimate:
        to_ask, tokens, most = 0, 0, 0.0
        for spec in self.eval_set.cases:
            try:
                model, body = request_for(self.prompt, spec, self.model)
            except SeamlineError:
                continue  # errored when run, costs nothing
            if await self.answers.is_kept(model, body):
                continue
            bound = await self.answers.bound(model, body)
            to_ask += 1
            tokens += bound.prompt_tokens
            most += bound.most_usd
        return Estimate(len(self.eval_set.cases), to_ask, tokens, most)

    async def run(
        self,
        on_case: Callable[[CaseResult], None],
        *,
        skip: frozenset[str] = frozenset(),
        baseline_answers: Mapping[str, str] | None = None,
    ) -> list[CaseResult]:
        """Score every case not in ``skip`` (finished by an earlier, interrupted attempt);
        ``on_case`` gets each result as it is known, from the event loop's thread.
        ``baseline_answers`` (by case id) are what pairwise scorers compare with."""
        gate = asyncio.Semaphore(self.concurrency)
        results: list[CaseResult] = []
        scoring = ScoringPool(self.answers, self.concurrency)

        async def one(spec: EvalCaseSpec) -> None:
            async with gate:
                result = await self._case(
                    spec, scoring, (baseline_answers or {}).get(spec.id or "")
                )
            results.append(result)
            on_case(result)

        try:
            await asyncio.gather(*(one(c) for c in self.eval_set.cases if c.id not in skip))
        finally:
            scoring.close()
        return results

    async def _case(
        self, spec: EvalCaseSpec, scoring: ScoringPool, baseline_answer: str | None
    ) -> CaseResult:
        result = CaseResult(case_id=spec.id or "")
        try:
            model, body = request_for(self.prompt, spec, self.model)
        except SeamlineError as exc:
            result.error = exc.message
            return result
        completion = await self._ask(model, body, result)
        if completion is None:
            return result
        result.output = completion.text
        result.prompt_tokens = completion.prompt_tokens
        result.completion_tokens = completion.completion_tokens
        result.cost_usd = completion.cost_usd
        result.latency_ms = completion.latency_ms
        result.kept = completion.kept
        self.upstreams.add((completion.upstream_model, completion.system_fingerprint))
        answer = Answer(
            completion.text,
            cost_usd=completion.cost_usd,
            latency_ms=completion.latency_ms,
            completion_tokens=completion.completion_tokens,
        )
        await scoring.run(self._score, case_of(spec, baseline_answer), answer, result)
        return result

    async def _ask(self, model: str, body: dict[str, Any], result: CaseResult) -> Completion | None:
        bound = 0.0
        if self.spending.cap is not None and not await self.answers.is_kept(model, body):
            bound = (await self.answers.bound(model, body)).most_usd
            if not await self.spending.reserve(self.answers, bound):
                result.error = (
                    f"not run: asking it could pass --max-cost ${self.spending.cap:.4f} "
                    f"(up to ${bound:.6f} more)"
                )
                return None
        try:
            return await self.answers(model, body, use_case=MODEL_USE_CASE)
        except SeamlineError as exc:
            result.error = f"{model} failed: {exc.message}"
        except Exception as exc:  # an upstream failing mid-run errors its case, not the run
            result.error = f"{model} failed: {exc}"
        finally:
            if bound:
                await self.spending.release(bound)
        return None

    def _score(self, case: Case, answer: Answer, result: CaseResult) -> None:
        for item in self.scorers:
            if item.scorer is None:
                result.metric_errors[item.metric] = item.problem or "not built"
                continue
            try:
                score = item.scorer.score(case, answer)
            except ScoreError as exc:
                result.metric_errors[item.metric] = str(exc)
                continue
            except Exception as exc:  # a judge's upstream failing, a scorer's bug
                result.metric_errors[item.metric] = f"{type(exc).__name__}: {exc}"
                continue
            result.scores[item.metric] = score.value
            if score.reason:
                result.reasons[item.metric] = score.reason


class ScoringPool:
    """Threads for scorers (plain functions; MiniLM and judges block), with a judge client
    that asks on the event loop, through the kept answers, as ``eval.judge`` calls.

    The threads are the pool's own: a scorer waiting for its judge must not hold a thread
    that the judge's call needs (kept answers are read on the loop's default pool)."""

    def __init__(self, answers: KeptAnswers, size: int) -> None:
        self.answers = answers
        self.loop = asyncio.get_running_loop()
        self.threads = ThreadPoolExecutor(size, thread_name_prefix="seamline-score")

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        return await self.loop.run_in_executor(self.threads, self._judged, work, args)

    def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)

    def _judged(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        token = judge_client.set(self._ask)
        try:
            return work(*args)
        finally:
            judge_client.reset(token)

    def _ask(self, model: str, body: dict[str, Any]) -> str:
        future = asyncio.run_coroutine_threadsafe(
            self.answers(model, body, use_case=JUDGE_USE_CASE), self.loop
        )
        return future.result(JUDGE_TIMEOUT_S).text
