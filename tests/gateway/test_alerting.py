"""The gateway checks its alert rules on its own, off the event loop: an alert fires within
an interval of the calls that cause it, reaches the webhook and shows on /metrics; a
budget's alert comes down the same channel."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import openai
import pytest

from seamline.core.settings import AlertRule, BudgetConfig
from tests.gateway.conftest import RunningGateway
from tests.stub_upstream import StubUpstream


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "nothing arrived in 10 s"
        time.sleep(0.05)


def _hook(receiver: StubUpstream) -> str:
    return f"{receiver.base_url.removesuffix('/v1')}/hook"


def test_the_gateway_fires_its_rules_and_posts_them(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    rule = AlertRule(name="errors", kind="error_rate", above=0.1, min_calls=1)
    receiver = upstreams["backup"]
    gateway = start_gateway(alerts=[rule], alert_webhook=_hook(receiver), alert_interval_s=0.2)
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    gateway.events()
    _wait_for(lambda: bool(receiver.hooks))
    assert receiver.hooks[0]["seamline"]["rule"] == "errors"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'seamline_alerts_fired_total{kind="error_rate",rule="errors"} 1.0' in metrics


def test_a_budget_alert_is_posted_to_the_alert_webhook(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    soft = BudgetConfig(name="acme", limit_usd=0.000001, mode="soft")  # warns, never blocks
    receiver = upstreams["backup"]
    gateway = start_gateway(budgets=[soft], alert_webhook=_hook(receiver))
    gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
    )
    _wait_for(lambda: bool(receiver.hooks))
    assert receiver.hooks[0]["seamline"]["kind"] == "budget"
    assert "budget" in receiver.hooks[0]["text"]
