"""Budgets: exact under concurrency, remembered across restarts, alerting at their share."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from seamline.core.settings import BudgetConfig
from tests.gateway.conftest import RunningGateway
from tests.stub_upstream import StubUpstream

HELLO = [{"role": "user", "content": "hello there"}]
# The stub bills 2 prompt + 4 completion tokens at $1 and $2 per million: $10e-6 a call.
CALL_COST = 10e-6


def _budget(limit: float, **extra: object) -> list[BudgetConfig]:
    return [BudgetConfig(scope="project", name="acme", period="day", limit_usd=limit, **extra)]  # type: ignore[arg-type]


def test_fifty_concurrent_calls_never_overshoot_the_budget(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    gateway = start_gateway(budgets=_budget(0.0002))
    upstreams["primary"].faults.latency_s = 0.05
    client = gateway.client()

    def call(_: int) -> str:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=8)
            return "ok"
        except openai.RateLimitError as refused:
            assert refused.body["code"] == "budget_exceeded"  # type: ignore[index]
            return "refused"

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(call, range(50)))
    assert outcomes.count("ok") >= 5 and outcomes.count("refused") >= 20
    stored = gateway.events(50)
    spent = sum(e["cost_usd"] for e in stored if e["status"] == "ok")
    assert spent <= 0.0002 + CALL_COST
    assert {e["error_type"] for e in stored if e["status"] != "ok"} == {"budget_exceeded"}


def test_a_restarted_gateway_remembers_what_was_spent(
    start_gateway: Callable[..., RunningGateway],
) -> None:
    # A call reserves 8 prompt tokens ($8e-6) and its 4-token cap ($8e-6) and costs $10e-6:
    # with $30e-6 a day two calls fit, and a third does not.
    first = start_gateway(budgets=_budget(3 * CALL_COST))
    for _ in range(2):
        first.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=4)
    first.events(2)
    first.server.stop()
    second = start_gateway(budgets=_budget(3 * CALL_COST))
    with pytest.raises(openai.RateLimitError, match="daily budget"):
        second.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=4)


def test_alerts_fire_once_at_their_share_and_soft_budgets_do_not_block(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    hook = upstreams["secondary"]
    gateway = start_gateway(
        budgets=_budget(
            5 * CALL_COST, mode="soft", alert_at=0.6, webhook=f"http://127.0.0.1:{hook.port}/hook"
        )
    )
    for _ in range(8):  # passes the cap: soft mode lets every call through
        gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    deadline = time.monotonic() + 5
    while len(hook.hooks) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [h["event"] for h in hook.hooks] == ["budget.warning", "budget.exceeded"]
    assert hook.hooks[0]["name"] == "acme" and hook.hooks[0]["limit_usd"] == 5 * CALL_COST
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'seamline_budget_alerts_total{level="warning",name="",scope="project"} 1.0' in metrics
    assert all(e["status"] == "ok" for e in gateway.events(8))


def test_embeddings_spend_counts_against_the_budget(
    start_gateway: Callable[..., RunningGateway],
) -> None:
    # "a b c" costs 3 tokens at $1 per million; with no exact tokenizer for this model a
    # call reserves one token a character (5): calls fit while spend stays under $4e-6.
    gateway = start_gateway(budgets=_budget(10e-6))
    client = gateway.client()
    for _ in range(2):
        client.embeddings.create(model="embed-small", input="a b c")
    with pytest.raises(openai.RateLimitError, match="daily budget"):
        client.embeddings.create(model="embed-small", input="a b c")


@pytest.mark.parametrize("answers", [8, 100])
def test_a_call_for_n_answers_reserves_all_of_them(
    start_gateway: Callable[..., RunningGateway], answers: int
) -> None:
    # One answer's reservation (8 prompt tokens at $1, a 4-token cap at $2: $16e-6) fits a
    # $50e-6 cap; n answers are billed n times over, so the reservation must refuse the call.
    gateway = start_gateway(budgets=_budget(5 * CALL_COST))
    with pytest.raises(openai.RateLimitError) as refused:
        gateway.client().chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=4, n=answers
        )
    assert refused.value.body["code"] == "budget_exceeded"  # type: ignore[index]
    reply = gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=4, n=2
    )
    assert len(reply.choices) == 2
    spent = sum(e["cost_usd"] for e in gateway.events(2) if e["status"] == "ok")
    assert 0 < spent <= 5 * CALL_COST
