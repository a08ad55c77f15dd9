"""Eval runs end to end: cases asked through an in-process gateway in front of a stub
upstream speaking OpenAI's wire format (scripted answers and judge verdicts), scored,
stored, gated against the version behind ``production``, and read by the release gate."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from seamline.core.errors import PermissionDenied
from seamline.core.settings import GatewayConfig, ModelConfig, ModelPrices, Settings
from seamline.evals.calls import Completion
from seamline.evals.evaluation import Evaluation, Outcome, RunRequest
from seamline.evals.mlflow_export import log_run
from seamline.evals.runner import request_for
from seamline.evals.runs import FINISHED, INTERRUPTED, RunStore
from seamline.evals.watch import Verdict, Watcher
from seamline.gateway.chat import EvalModelCall
from seamline.gateway.core import Gateway
from seamline.registry import Actor, Registry
from seamline.registry.eval_set import EvalSetSpec
from seamline.registry.loader import draft_from_mapping
from seamline.store.schema import events
from tests.conftest import make_actor
from tests.stub_upstream import StubUpstream

CASES = 40
PRICE = ModelPrices(input=1.0, output=2.0)
_VARIANT = re.compile(r"variant (\w+)")
_COUNTRY = re.compile(r"country-(\d+)")


class Script:
    """Which cases each prompt variant gets wrong; judges say every statement holds."""

    def __init__(self) -> None:
        self.wrong: dict[str, set[int]] = {}

    def __call__(self, body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        if system.startswith("You grade"):  # 5 for the right city, else 1 (3 if it is long)
            graded = body["messages"][-1]["content"]
            score = 5 if "city-" in graded else 3 if "I hope this helps" in graded else 1
            return json.dumps({"score": score, "rationale": "checked the city"})
        if system.startswith("You compare two answers"):  # position-biased: always the first
            return json.dumps({"better": "A"})
        if system.startswith("You check statements"):
            items = re.findall(r"^\d+\. ", body["messages"][-1]["content"], re.MULTILINE)
            return json.dumps({"verdicts": [True] * len(items)})
        variant = _VARIANT.search(system)
        number = _COUNTRY.search(body["messages"][-1]["content"])
        assert variant is not None and number is not None
        if int(number.group(1)) in self.wrong.get(variant.group(1), set()):
            return "I am not sure."
        return f"The capital is city-{number.group(1)}."


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def stub(script: Script) -> Iterator[StubUpstream]:
    upstream = StubUpstream("evals")
    upstream.reply_text = script  # type: ignore[method-assign]
    yield upstream.start()
    upstream.stop()


@pytest.fixture
def settings(stub: StubUpstream, tmp_path: Path) -> Settings:
    models = [
        ModelConfig(name=name, base_url=stub.base_url, api_key="sk-upstream", prices=PRICE)
        for name in ("gpt-4o-mini", "judge-model")
    ]
    config = GatewayConfig(embedded_models=False, backoff_s=0.01, max_backoff_s=0.05)
    return Settings(home=tmp_path, models=models, gateway=config)


def push_prompt(
    registry: Registry, actor: Actor, variant: str, wrong: set[int], script: Script, **extra: Any
) -> int:
    script.wrong[variant] = wrong
    doc = {
        "name": "capitals",
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": f"Answer with the capital, variant {variant}."},
            {"role": "user", "content": "What is the capital of {{ country }}?"},
        ],
        "variables": [{"name": "country", "type": "string"}],
        "parameters": {"max_tokens": 20},
        "eval_set": "capitals-golden",
        "gate": {"min": {"contains": 0.8}},
        **extra,
    }
    pushed = registry.push(actor, [draft_from_mapping(doc, source="capitals.yaml")])
    return pushed[0].version


def push_cases(
    registry: Registry,
    actor: Actor,
    scorers: list[dict[str, Any]] | None = None,
    extra_cases: list[dict[str, Any]] | None = None,
) -> None:
    cases = [
        {
            "id": f"c{i}",
            "variables": {"country": f"country-{i}"},
            "messages": [{"role": "user", "content": f"And in one word: country-{i}?"}],
            "reference": f"The capital is city-{i}.",
            "contexts": [f"The capital of country-{i} is city-{i}."],
            "criteria": {"contains": {"value": f"city-{i}."}},
        }
        for i in range(CASES)
    ]
    doc = {
        "kind": "eval_set",
        "name": "capitals-golden",
        "scorers": scorers or [{"name": "contains"}],
        "cases": cases + (extra_cases or []),
    }
    registry.push(actor, [draft_from_mapping(doc, source="capitals-golden.yaml")])


def evaluate(
    registry: Registry,
    actor: Actor,
    settings: Settings,
    request: RunRequest,
    *,
    wrap: Callable[[EvalModelCall], Any] = lambda call: call,
) -> Outcome:
    async def go() -> Outcome:
        gateway = Gateway(settings, registry)
        await gateway.start()
        try:
            call = wrap(EvalModelCall(gateway, actor))
            return await Evaluation(registry, actor, call).run(request)
        finally:
            await gateway.stop()

    return asyncio.run(go())


def metric(outcome: Outcome, name: str) -> Any:
    return next(m for m in outcome.report.metrics if m.metric == name)


def test_a_run_scores_every_case_stores_it_and_records_its_calls(
    registry: Registry, alice: Actor, settings: Settings, script: Script
) -> None:
    push_prompt(registry, alice, "a", {0, 1, 2, 3}, script)
    push_cases(registry, alice)
    outcome = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1"))
    assert metric(outcome, "contains").candidate.estimate == pytest.approx(36 / 40)
    assert outcome.report.passed  # 0.90 >= 0.8, nothing errored
    assert outcome.notes == ["capitals@production does not exist: no baseline"]
    stored = RunStore(registry.db, alice.project.id)
    run = stored.get(outcome.run.id)
    assert (run.status, run.passed, run.subject.prompt_ref) == (FINISHED, True, "capitals@1")
    assert run.subject.eval_set_ref == "capitals-golden@1" and run.cost_usd > 0
    assert len(stored.cases(run.id)) == CASES
    assert stored.cases(run.id)["c0"].output == "I am not sure."
    with registry.db.read() as conn:
        recorded = conn.execute(select(events.c.use_case, events.c.cost_usd)).all()
    assert len(recorded) == CASES and {row.use_case for row in recorded} == {"eval"}
    assert sum(row.cost_usd for row in recorded) == pytest.approx(run.cost_usd)


def test_a_rerun_asks_nothing_and_gives_identical_numbers(
    registry: Registry, alice: Actor, settings: Settings, script: Script, stub: StubUpstream
) -> None:
    push_prompt(registry, alice, "a", {5, 6}, script)
    push_cases(registry, alice)
    first = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1"))
    asked = len(stub.requests)
    again = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1"))
    assert len(stub.requests) == asked == CASES
    assert again.report.as_record() == first.report.as_record()
    assert again.run.id != first.run.id and again.run.cost_usd == 0
    assert all(result.kept for result in again.cases.values())
    fresh = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1", refresh=True))
    assert len(stub.requests) == 2 * CASES and fresh.run.cost_usd > 0


def test_a_real_regression_fails_against_production_and_noise_of_the_same_mean_does_not(
    registry: Registry, alice: Actor, bob: Actor, settings: Settings, script: Script
) -> None:
    push_cases(registry, alice)
    push_prompt(registry, alice, "a", {0, 1, 2, 3}, script)
    first = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1"))
    registry.approve(bob, "prompt", "capitals", 1)
    # The passing run releases v1 without an override.
    assert registry.move_alias(alice, "prompt", "capitals", "production", 1).version == 1
    assert first.report.passed

    # v2 is wrong on four more cases: still at the 0.8 threshold, but worse, case by case.
    push_prompt(registry, alice, "b", {0, 1, 2, 3, 10, 11, 12, 13}, script)
    worse = evaluate(registry, alice, settings, RunRequest(prompt="capitals@2"))
    assert worse.baseline is not None and worse.baseline.id == first.run.id  # reused
    contains = metric(worse, "contains")
    assert contains.candidate.estimate == pytest.approx(0.8)
    assert contains.comparison.difference.estimate == pytest.approx(-0.1)
    assert not worse.report.passed
    failed = [c for c in worse.report.conditions if not c.passed]
    assert [c.condition for c in failed] == [
        "contains: no regression against capitals@production (v1)"
    ]

    # v3 is wrong as often as v1, on other cases: noise, not a regression.
    push_prompt(registry, alice, "c", {20, 21, 22, 23}, script)
    same = evaluate(registry, alice, settings, RunRequest(prompt="capitals@3"))
    assert metric(same, "contains").candidate.estimate == pytest.approx(0.9)
    assert same.report.passed

    # The gate reads the runs: v2 failed, so production moves only on an audited override.
    registry.approve(bob, "prompt", "capitals", 2)
    with pytest.raises(PermissionDenied, match="failed its gate") as refused:
        registry.move_alias(alice, "prompt", "capitals", "production", 2)
    assert refused.value.code == "gate_failed"
    registry.move_alias(
        alice, "prompt", "capitals", "production", 2, override=True, reason="accepted drop"
    )
    override = registry.audit_log(alice, action="gate.override")[0]
    assert (
        override.details["reason"] == "accepted drop" and worse.run.id in override.details["gate"]
    )
    registry.approve(bob, "prompt", "capitals", 3)
    assert registry.move_alias(alice, "prompt", "capitals", "production", 3).version == 3


def test_errored_cases_are_counted_apart_with_their_reason_and_fail_the_gate_closed(
    registry: Registry, alice: Actor, settings: Settings, script: Script, stub: StubUpstream
) -> None:
    push_prompt(registry, alice, "a", set(), script)
    scorers = [{"name": "contains"}, {"name": "no_such_scorer"}]
    push_cases(registry, alice, scorers, [{"id": "typo", "variables": {"nation": "country-1"}}])
    stub.faults.fail_next, stub.faults.fail_status = 1, 400  # one call refused mid-run
    outcome = evaluate(
        registry, alice, settings, RunRequest(prompt="capitals@1", against=None, concurrency=1)
    )
    assert "unknown variables: nation" in (outcome.cases["typo"].error or "")
    failed = [r for r in outcome.cases.values() if r.error and "failed" in r.error]
    assert len(failed) == 1 and "400" in (failed[0].error or "")
    answered = [r for r in outcome.cases.values() if not r.error]
    assert len(answered) == CASES - 1
    assert all("unknown scorer" in r.metric_errors["no_such_scorer"] for r in answered)
    assert metric(outcome, "contains").candidate.n == CASES - 1  # errors are not zeros
    conditions = {c.condition: c for c in outcome.report.conditions}
    assert not conditions["no_such_scorer is scored"].passed
    assert not conditions["errored cases <= 5%"].passed and not outcome.report.passed


def test_max_cost_stops_the_run_before_it_overspends(
    registry: Registry, alice: Actor, settings: Settings, script: Script, stub: StubUpstream
) -> None:
    push_prompt(registry, alice, "a", set(), script)
    push_cases(registry, alice)

    async def one_bound() -> float:
        gateway = Gateway(settings, registry)
        # the largest case's body: a cap of 5.5 of these lets at least five calls reserve
        prompt = Evaluation(registry, alice, EvalModelCall(gateway, alice)).prompt("capitals", 1)
        spec = EvalSetSpec.model_validate(
            registry.get_version(alice, "eval_set", "capitals-golden", None).content
        )
        model, body = request_for(prompt, spec.cases[-1], None)
        bound = await EvalModelCall(gateway, alice).bound(model, body)
        await gateway.stop()
        return bound.most_usd

    cap = 5.5 * asyncio.run(one_bound())
    outcome = evaluate(
        registry, alice, settings, RunRequest(prompt="capitals@1", against=None, max_cost=cap)
    )
    stopped = [r for r in outcome.cases.values() if r.error and "--max-cost" in r.error]
    assert stopped and len(stub.requests) == CASES - len(stopped) >= 5
    assert 0 < outcome.run.cost_usd <= cap and not outcome.report.passed


class Interrupting:
    """Answers ``allowed`` calls, then waits forever (until the run is cancelled)."""

    def __init__(self, call: EvalModelCall, allowed: int) -> None:
        self.call = call
        self.allowed = allowed
        self.asked = 0
        self.stuck = asyncio.Event()

    async def __call__(self, model: str, body: dict[str, Any], *, use_case: str) -> Completion:
        self.asked += 1
        if self.asked > self.allowed:
            self.stuck.set()
            await asyncio.Event().wait()
        return await self.call(model, body, use_case=use_case)

    async def bound(self, model: str, body: dict[str, Any]) -> Any:
        return await self.call.bound(model, body)


def test_an_interrupted_run_keeps_its_cases_and_resumes_with_the_rest(
    registry: Registry, alice: Actor, settings: Settings, script: Script, stub: StubUpstream
) -> None:
    push_prompt(registry, alice, "a", {1}, script)
    push_cases(registry, alice)
    request = RunRequest(prompt="capitals@1", against=None, concurrency=1)

    async def interrupted() -> str:
        gateway = Gateway(settings, registry)
        await gateway.start()
        call = Interrupting(EvalModelCall(gateway, alice), allowed=5)
        task = asyncio.create_task(Evaluation(registry, alice, call).run(request))
        await call.stuck.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gateway.stop()
        runs = RunStore(registry.db, alice.project.id).latest(prompt_name="capitals")
        return runs[0].id

    run_id = asyncio.run(interrupted())
    store = RunStore(registry.db, alice.project.id)
    assert store.get(run_id).status == INTERRUPTED and len(store.cases(run_id)) == 5

    async def resumed() -> Outcome:
        gateway = Gateway(settings, registry)
        await gateway.start()
        try:
            return await Evaluation(registry, alice, EvalModelCall(gateway, alice)).resume(run_id)
        finally:
            await gateway.stop()

    outcome = asyncio.run(resumed())
    assert outcome.run.id == run_id and outcome.run.status == FINISHED
    assert len(store.cases(run_id)) == CASES and len(stub.requests) == CASES  # none twice
    assert metric(outcome, "contains").candidate.estimate == pytest.approx(39 / 40)


def test_judges_are_asked_through_the_gateway_and_recorded_as_judge_calls(
    registry: Registry, alice: Actor, settings: Settings, script: Script
) -> None:
    push_prompt(registry, alice, "a", set(), script, gate={"min": {"faithfulness": 0.5}})
    push_cases(registry, alice, [{"name": "faithfulness", "judge": "judge-model"}])
    outcome = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1", against=None))
    assert metric(outcome, "faithfulness").candidate.estimate == 1.0
    assert outcome.run.definition["judges"] == ["judge-model"]
    # The prompt's own threshold replaces practice's default (0.88).
    assert "faithfulness >= 0.5" in [c.condition for c in outcome.report.conditions]
    with registry.db.read() as conn:
        calls = conn.execute(select(events.c.use_case, events.c.model_requested)).all()
    judged = [row for row in calls if row.use_case == "eval.judge"]
    assert len(judged) == CASES and {row.model_requested for row in judged} == {"judge-model"}


def push_judge(registry: Registry, actor: Actor) -> None:
    doc = {
        "name": "grader",
        "model": "judge-model",
        "messages": [
            {"role": "system", "content": "You grade capitals from 1 to 5."},
            {"role": "user", "content": "Q: {{ question }}\nANSWER: {{ answer }}"},
        ],
        "variables": [
            {"name": "question", "type": "string"},
            {"name": "answer", "type": "string"},
        ],
    }
    registry.push(actor, [draft_from_mapping(doc, source="grader.yaml")])
    registry.move_alias(actor, "prompt", "grader", "staging", 1)


def test_a_judge_prompt_from_the_registry_grades_and_the_run_pins_its_version(
    registry: Registry, alice: Actor, settings: Settings, script: Script
) -> None:
    push_prompt(registry, alice, "a", {0, 1, 2, 3}, script, gate=None)
    push_judge(registry, alice)
    scorer = {"name": "judge", "prompt": "grader@staging", "samples": 2, "metric": "grade"}
    push_cases(registry, alice, [scorer])
    outcome = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1", against=None))
    grade = metric(outcome, "grade")
    assert grade.candidate.estimate == pytest.approx(36 / 40)  # (5 - 1) / 4 for each right one
    assert outcome.cases["c0"].reasons["grade"] == "1/5: checked the city (samples: 1, 1)"
    pinned = outcome.run.definition["scorers"][0]
    assert pinned["prompt"] == "grader@1" and pinned["prompt_content"]["name"] == "grader"
    assert outcome.run.definition["judges"] == ["grader@1"]
    with registry.db.read() as conn:
        judged = conn.execute(select(events.c.id).where(events.c.use_case == "eval.judge")).all()
    assert len(judged) == 2 * CASES  # two samples, each a request of its own


def test_calibration_measures_a_judge_and_a_gate_can_require_it(
    registry: Registry, alice: Actor, settings: Settings, script: Script, tmp_path: Path
) -> None:
    push_judge(registry, alice)
    labels = tmp_path / "labels.jsonl"
    rows = [
        {
            "id": f"l{i}",
            "question": f"Capital of country-{i}?",
            "answer": f"city-{i}" if i % 3 else "no idea",
            "label": "pass" if i % 3 else "fail",
            "score": 5 if i % 3 else 1,
        }
        for i in range(30)
    ]
    labels.write_text("".join(json.dumps(row) + "\n" for row in rows))

    async def measure() -> Any:
        gateway = Gateway(settings, registry)
        await gateway.start()
        try:
            evaluation = Evaluation(registry, alice, EvalModelCall(gateway, alice))
            return await evaluation.calibrate("grader@staging", labels, verbosity=True)
        finally:
            await gateway.stop()

    push_prompt(registry, alice, "a", {0}, script, gate=None)
    scorers = [{"name": "judge", "prompt": "grader@1", "min_agreement": 0.8}]
    push_cases(registry, alice, scorers)
    before = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1", against=None))
    never = next(c for c in before.report.conditions if c.condition.startswith("judge "))
    assert not never.passed and "never calibrated" in never.detail

    measured = asyncio.run(measure())
    assert (measured.judge_prompt, measured.items, measured.errored) == ("grader@1", 30, 0)
    assert measured.kappa.estimate == 1.0 and measured.spearman.estimate == pytest.approx(1.0)
    # padding lifts the 10 wrong answers from 1 to 3: the judge rewards length
    assert measured.verbosity.estimate == pytest.approx(2 * 10 / 30)
    after = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1", against=None))
    calibrated = after.report.conditions[0]
    assert calibrated.condition == "judge grader@1 on judge-model agrees with labels: kappa >= 0.8"
    assert calibrated.passed and after.report.passed


def test_the_mlflow_extra_writes_a_run_a_real_mlflow_client_reads_back(
    registry: Registry,
    alice: Actor,
    settings: Settings,
    script: Script,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # the store's artifacts go under ./mlruns
    push_cases(registry, alice)
    push_prompt(registry, alice, "a", {0, 1, 2, 3}, script)
    first = evaluate(registry, alice, settings, RunRequest(prompt="capitals@1"))
    registry.approve(make_actor(registry, "bob"), "prompt", "capitals", 1)
    registry.move_alias(alice, "prompt", "capitals", "production", 1)
    push_prompt(registry, alice, "b", {0, 1, 2, 3, 10, 11, 12, 13}, script)
    worse = evaluate(registry, alice, settings, RunRequest(prompt="capitals@2"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_run(worse, uri, "capitals")

    client = mlflow.tracking.MlflowClient(uri)
    stored = client.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params["prompt"] == "capitals@2"
    assert stored.data.params["baseline_run"] == first.run.id
    assert stored.data.params["seamline_run"] == worse.run.id
    contains = metric(worse, "contains")
    assert stored.data.metrics["contains"] == pytest.approx(0.8)
    assert stored.data.metrics["contains.low"] == pytest.approx(contains.candidate.low)
    assert stored.data.metrics["contains.difference"] == pytest.approx(-0.1)
    assert stored.data.metrics["gate_passed"] == 0.0
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert artifacts == {"seamline-report.md", "seamline-run.json"}
    report = json.loads(Path(client.download_artifacts(run_id, "seamline-run.json")).read_text())
    assert report["run"]["id"] == worse.run.id and report["passed"] is False


def test_watch_runs_the_suite_on_a_push_and_on_an_upstream_change_and_times_the_verdict(
    registry: Registry,
    alice: Actor,
    bob: Actor,
    settings: Settings,
    script: Script,
    stub: StubUpstream,
) -> None:
    push_cases(registry, alice)
    push_prompt(registry, alice, "a", {0, 1, 2, 3}, script)

    async def watch(step: Callable[[], None]) -> list[Verdict]:
        step()
        gateway = Gateway(settings, registry)
        await gateway.start()
        try:
            evaluation = Evaluation(registry, alice, EvalModelCall(gateway, alice))
            return await Watcher(evaluation).check()
        finally:
            await gateway.stop()

    [first] = asyncio.run(watch(lambda: None))
    assert (first.change.prompt, first.change.kind) == ("capitals@1", "pushed")
    assert first.outcome.report.passed

    def release() -> None:
        registry.approve(bob, "prompt", "capitals", 1)
        registry.move_alias(alice, "prompt", "capitals", "production", 1)

    assert asyncio.run(watch(release)) == []  # nothing changed: the probe answers as before

    def regress() -> None:
        push_prompt(registry, alice, "b", {0, 1, 2, 3, 10, 11, 12, 13}, script)

    [pushed] = asyncio.run(watch(regress))
    assert (pushed.change.prompt, pushed.outcome.report.passed) == ("capitals@2", False)
    run = RunStore(registry.db, alice.project.id).get(pushed.outcome.run.id)
    assert run.definition["trigger"]["change"] == "pushed"
    assert run.verdict_after_s is not None and run.verdict_after_s >= 0

    def new_build() -> None:
        stub.fingerprint = "fp_2026_11"  # the provider changed the model under the same name

    [upstream] = asyncio.run(watch(new_build))
    assert (upstream.change.prompt, upstream.change.kind) == ("capitals@1", "upstream")
    assert "fp_2026_11" in upstream.change.detail
    assert all(not result.kept for result in upstream.outcome.cases.values())  # asked afresh
    assert asyncio.run(watch(lambda: None)) == []  # the new build is now on record


def test_pairwise_compares_with_the_baseline_answers_and_the_run_reports_the_flip_rate(
    registry: Registry, alice: Actor, bob: Actor, settings: Settings, script: Script
) -> None:
    push_cases(registry, alice, [{"name": "pairwise", "judge": "judge-model"}])
    push_prompt(registry, alice, "a", {0, 1, 2, 3}, script, gate=None)
    evaluate(registry, alice, settings, RunRequest(prompt="capitals@1"))
    registry.approve(bob, "prompt", "capitals", 1)
    registry.move_alias(alice, "prompt", "capitals", "production", 1)
    push_prompt(registry, alice, "b", {0, 1, 2, 3, 10, 11}, script, gate=None)
    outcome = evaluate(registry, alice, settings, RunRequest(prompt="capitals@2"))
    assert {r.reasons["pairwise"] for r in outcome.cases.values()} == {
        "decided by position against the baseline's answer: counted a tie"
    }
    assert metric(outcome, "pairwise").candidate.estimate == 0.5
    assert "pairwise: 40 of 40 comparisons decided by position (position-flip rate 100%)" in (
        outcome.notes
    )
