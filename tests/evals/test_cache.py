"""Kept answers: a repeated request is answered from the store, any change to it is a new
request, projects never read each other's answers, and a refresh asks again."""

from __future__ import annotations

from typing import Any

from seamline.evals.cache import OutputCache, cached, request_hash
from seamline.evals.judging import ask_json, judge_client
from seamline.registry import Actor, Registry
from tests.conftest import make_actor

BODY = {"messages": [{"role": "user", "content": "Is the sky blue?"}], "temperature": 0}


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model: str, body: dict[str, Any]) -> str:
        self.calls += 1
        return f'{{"verdict": {self.calls}}}'


def test_a_repeated_request_is_answered_from_the_store(registry: Registry, alice: Actor) -> None:
    model = Counting()
    cache = OutputCache(registry.db, alice.project.id)
    client = cached(model, cache)
    first = client("judge", BODY)
    assert client("judge", {**BODY}) == first and model.calls == 1  # the same content
    assert (cache.hits, cache.misses) == (1, 1)
    client("judge", {**BODY, "temperature": 0.7})  # any change is a new request
    client("other-judge", BODY)
    assert model.calls == 3
    # a fresh cache object on the same database still finds it: kept, not in memory
    assert cached(model, OutputCache(registry.db, alice.project.id))("judge", BODY) == first
    assert model.calls == 3


def test_projects_never_read_each_others_answers(registry: Registry, alice: Actor) -> None:
    model = Counting()
    other = make_actor(registry, "carol", project="globex")
    cached(model, OutputCache(registry.db, alice.project.id))("judge", BODY)
    cached(model, OutputCache(registry.db, other.project.id))("judge", BODY)
    assert model.calls == 2


def test_a_refresh_asks_again_and_keeps_the_new_answer(registry: Registry, alice: Actor) -> None:
    model = Counting()
    cache = OutputCache(registry.db, alice.project.id)
    cached(model, cache)("judge", BODY)
    fresh = cached(model, cache, refresh=True)("judge", BODY)
    assert model.calls == 2 and cached(model, cache)("judge", BODY) == fresh


def test_judges_read_through_the_cache(registry: Registry, alice: Actor) -> None:
    model = Counting()
    token = judge_client.set(cached(model, OutputCache(registry.db, alice.project.id)))
    try:
        answers = [ask_json("judge", "sys", "user", {"type": "object"}) for _ in range(3)]
    finally:
        judge_client.reset(token)
    assert answers == [{"verdict": 1}] * 3 and model.calls == 1
    assert len(request_hash("judge", BODY)) == 64
