"""Limits shared through Redis (127.0.0.1:6379 here and in CI) by two gateway workers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import openai
import pytest
import redis

from seamline.core.settings import BudgetConfig
from tests.gateway.conftest import RunningGateway

REDIS_URL = os.environ.get("SEAMLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Redis is not running at 127.0.0.1:6379")
    before = set(client.scan_iter("seamline:rl:*"))
    yield REDIS_URL
    created = set(client.scan_iter("seamline:rl:*")) - before
    if created:
        client.delete(*created)
    client.close()


def test_two_workers_share_one_request_limit(
    start_gateway: Callable[..., RunningGateway], redis_url: str, fresh_window: None
) -> None:
    first = start_gateway(redis_url=redis_url, key_limits={"requests_per_minute": 5})
    second = start_gateway(
        redis_url=redis_url, key=first.key, key_limits={"requests_per_minute": 5}
    )
    outcomes = []
    for worker in (first, second, first, second, first, second, first, second):
        try:
            worker.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            outcomes.append("ok")
        except openai.RateLimitError as limited:
            assert int(limited.response.headers["retry-after"]) >= 1
            outcomes.append("limited")
    assert outcomes == ["ok"] * 5 + ["limited"] * 3


def test_tokens_counted_by_one_worker_limit_the_other(
    start_gateway: Callable[..., RunningGateway], redis_url: str, fresh_window: None
) -> None:
    first = start_gateway(redis_url=redis_url, key_limits={"tokens_per_minute": 5})
    second = start_gateway(redis_url=redis_url, key=first.key, key_limits={"tokens_per_minute": 5})
    first.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # 4 tokens
    second.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # now 8
    with pytest.raises(openai.RateLimitError, match="tokens per minute"):
        first.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_two_workers_share_one_budget(
    start_gateway: Callable[..., RunningGateway], redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    budget = [BudgetConfig(scope="key", name="placeholder", period="day", limit_usd=30e-6)]
    first = start_gateway(redis_url=redis_url, budgets=budget)
    key_id = first.app.gateway.registry.authenticate(first.key).key_id
    assert key_id is not None
    budget = [BudgetConfig(scope="key", name=key_id, period="day", limit_usd=30e-6)]
    first.server.stop()
    first = start_gateway(redis_url=redis_url, key=first.key, budgets=budget)
    second = start_gateway(redis_url=redis_url, key=first.key, budgets=budget)
    outcomes = []
    try:
        for worker in (first, second, first, second):
            try:
                worker.client().chat.completions.create(
                    model="gpt-4o-mini", messages=HELLO, max_tokens=4
                )
                outcomes.append("ok")
            except openai.RateLimitError:
                outcomes.append("refused")
    finally:
        stale = list(client.scan_iter(f"seamline:budget:key:{key_id}:*"))
        if stale:
            client.delete(*stale)
        client.close()
    # "hi" reserves 7 prompt tokens and a 4-token cap ($15e-6) and costs $7e-6 (1 + 3
    # tokens): a call fits while the shared spend is at most $15e-6, so three do.
    assert outcomes == ["ok", "ok", "ok", "refused"]


def test_a_hold_left_by_a_dead_worker_expires(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import uuid

    from seamline.gateway.stores import budgets

    key = f"test:{uuid.uuid4().hex}"

    async def nothing_spent() -> int:
        return 0

    async def scenario() -> tuple[str | None, str | None, str | None]:
        store = budgets.RedisBudgetStore(redis_url)
        try:
            monkeypatch.setattr(budgets, "HOLD_S", 0)  # this worker "dies" holding 20
            orphan = await store.reserve(key, 20, 30, nothing_spent)
            monkeypatch.setattr(budgets, "HOLD_S", 900)
            await asyncio.sleep(0.01)
            after_expiry = await store.reserve(key, 20, 30, nothing_spent)
            refused = await store.reserve(key, 20, 30, nothing_spent)  # 20 held of 30
            return orphan, after_expiry, refused
        finally:
            client = redis.asyncio.Redis.from_url(redis_url)
            stale = [k async for k in client.scan_iter(f"seamline:budget:{key}:*")]
            if stale:
                await client.delete(*stale)
            await client.aclose()
            await store.close()

    orphan, after_expiry, refused = asyncio.run(scenario())
    assert orphan is not None and after_expiry is not None and refused is None
