"""Kept answers: a repeated request is answered from the store, any change to it is a new
request, projects never read each other's answers, and a refresh asks again."""

from __future__ import annotations

import asyncio
from typing import Any

from seamline.evals.cache import KeptAnswers, OutputCache, request_hash
from seamline.evals.calls import CallBound, Completion
from seamline.registry import Actor, Registry
from tests.conftest import make_actor

BODY = {"messages": [{"role": "user", "content": "Is the sky blue?"}], "temperature": 0}


class Counting:
    """A model that answers with how many times it was asked, at a cent a call."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, model: str, body: dict[str, Any], *, use_case: str) -> Completion:
        self.calls += 1
        return Completion(f'{{"verdict": {self.calls}}}', completion_tokens=3, cost_usd=0.01)

    async def bound(self, model: str, body: dict[str, Any]) -> CallBound:
        return CallBound(10, 10, 0.02)


def ask(answers: KeptAnswers, model: str = "judge", body: dict[str, Any] = BODY) -> Completion:
    return asyncio.run(answers(model, body, use_case="eval"))


def test_a_repeated_request_is_answered_from_the_store(registry: Registry, alice: Actor) -> None:
    model = Counting()
    cache = OutputCache(registry.db, alice.project.id)
    answers = KeptAnswers(model, cache)
    first = ask(answers)
    again = ask(answers, body={**BODY})  # the same content
    assert again.text == first.text and again.kept and not first.kept and model.calls == 1
    assert again.cost_usd == first.cost_usd == answers.spent_usd  # as first paid, paid once
    assert (cache.hits, cache.misses) == (1, 1)
    ask(answers, body={**BODY, "temperature": 0.7})  # any change is a new request
    ask(answers, model="other-judge")
    assert model.calls == 3
    # a fresh cache object on the same database still finds it: kept, not in memory
    assert ask(KeptAnswers(model, OutputCache(registry.db, alice.project.id))).text == first.text
    assert model.calls == 3 and len(request_hash("judge", BODY)) == 64


def test_projects_never_read_each_others_answers(registry: Registry, alice: Actor) -> None:
    model = Counting()
    other = make_actor(registry, "carol", project="globex")
    ask(KeptAnswers(model, OutputCache(registry.db, alice.project.id)))
    assert not asyncio.run(
        KeptAnswers(model, OutputCache(registry.db, other.project.id)).is_kept("judge", BODY)
    )
    ask(KeptAnswers(model, OutputCache(registry.db, other.project.id)))
    assert model.calls == 2


def test_a_refresh_asks_again_and_keeps_the_new_answer(registry: Registry, alice: Actor) -> None:
    model = Counting()
    cache = OutputCache(registry.db, alice.project.id)
    ask(KeptAnswers(model, cache))
    fresh = ask(KeptAnswers(model, cache, refresh=True))
    assert model.calls == 2 and ask(KeptAnswers(model, cache)).text == fresh.text
