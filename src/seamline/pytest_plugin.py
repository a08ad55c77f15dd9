"""Eval cases as tests: the ``seamline`` pytest fixture.

Installed with seamline (entry point ``pytest11``), it gives each test session one
:class:`EvalSession` on the configured home (``$SEAMLINE_HOME``, its ``seamline.toml`` and
project), whose model calls go through an in-process gateway like ``seamline evals run``:
the same router, budgets and events (use case ``eval``), and the same kept answers, so a
test suite re-run asks nothing and asserts on the same answers.

```python
def test_refunds_cite_the_policy(seamline):
    answer = seamline.ask("support-answer@staging", question="Refunds?", context=KB)
    assert seamline.score("contains", answer, value="14 days").value == 1.0

def test_the_golden_set_holds(seamline):
    run = seamline.evaluate("support-answer@staging")    # its eval set, against production
    assert run.interval("contains").low >= 0.8            # sure, not just on average
    assert run.report.passed, run.report.conditions
```
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import pytest

from seamline.core.settings import Settings
from seamline.evals.cache import KeptAnswers, OutputCache
from seamline.evals.calls import JUDGE_USE_CASE, MODEL_USE_CASE, Completion
from seamline.evals.evaluation import Evaluation, Outcome, RunRequest
from seamline.evals.judging import judge_client
from seamline.evals.runner import request_for
from seamline.evals.scoring import Answer, Case, Score, build_scorer
from seamline.gateway.chat import EvalModelCall
from seamline.gateway.core import GatewayThread
from seamline.registry.eval_set import EvalCaseSpec
from seamline.registry.workspace import local_actor, open_registry

T = TypeVar("T")


class EvalSession:
    """Models, scorers and eval runs for synchronous test code; the gateway runs on an
    event loop of its own, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.registry = open_registry(settings)
        self.actor = local_actor(self.registry.db, settings.project, settings.acting_user)
        self._thread = GatewayThread(settings, self.registry)
        self._wait = self._thread.wait
        self._call = EvalModelCall(self._thread.gateway, self.actor)
        self._answers = KeptAnswers(
            self._call, OutputCache(self.registry.db, self.actor.project.id)
        )
        self.evaluation = Evaluation(self.registry, self.actor, self._call)

    def ask(self, prompt: str, /, **variables: Any) -> Completion:
        """The answer of prompt ``NAME@REF`` rendered with ``variables`` (kept: asked once)."""
        name, _, ref = prompt.partition("@")
        model, body = request_for(
            self.evaluation.prompt(name, ref or None), EvalCaseSpec(variables=variables), None
        )
        return self._wait(self._answers(model, body, use_case=MODEL_USE_CASE))

    def score(
        self,
        scorer: str | Mapping[str, Any],
        answer: str | Completion,
        *,
        question: str | None = None,
        reference: str | None = None,
        contexts: tuple[str, ...] = (),
        **settings: Any,
    ) -> Score:
        """Score ``answer`` with a scorer by name (and its settings) or by its mapping;
        judges are asked through the session's gateway."""
        spec = {"name": scorer, **settings} if isinstance(scorer, str) else dict(scorer)
        built = build_scorer(self.evaluation.pinned(spec))
        case = Case(
            variables={"question": question} if question else {},
            reference=reference,
            contexts=contexts,
        )
        text = answer if isinstance(answer, str) else answer.text
        token = judge_client.set(self._ask_judge)
        try:
            return built.score(case, Answer(text))
        finally:
            judge_client.reset(token)

    def evaluate(
        self,
        prompt: str,
        eval_set: str | None = None,
        *,
        against: str | None = None,
        **options: Any,
    ) -> Outcome:
        """A stored eval run, as ``seamline evals run`` makes it (``against`` a baseline
        alias: none by default in tests)."""
        request = RunRequest(prompt=prompt, eval_set=eval_set, against=against, **options)
        return self._wait(self.evaluation.run(request))

    def close(self) -> None:
        self._thread.close()

    def _ask_judge(self, model: str, body: dict[str, Any]) -> str:
        return self._wait(self._answers(model, body, use_case=JUDGE_USE_CASE)).text


@pytest.fixture(scope="session")
def seamline() -> Iterator[EvalSession]:
    """One eval session on the configured home for the whole test session."""
    session = EvalSession(Settings())
    try:
        yield session
    finally:
        session.close()
