"""The gateway checks its alert rules on its own, off the event loop: an alert fires within
an interval of the calls that cause it, reaches the webhook and shows on /metrics; a
budget's alert comes down the same channel."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import openai
import pytest

from seamline.core.clock import utcnow
from seamline.core.settings import AlertRule, BudgetConfig
from seamline.gateway.alerting import Alerting
from seamline.gateway.core import GatewayThread
from seamline.monitoring.alerts import AlertStore
from seamline.monitoring.quality import CallScores
from seamline.registry import Actor, Registry
from seamline.registry.loader import draft_from_mapping
from tests.factories import prompt_draft
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


def test_a_trigger_runs_the_eval_suite_of_the_prompt_it_concerns(
    start_gateway: Callable[..., RunningGateway], registry: Registry, alice: Actor, bob: Actor
) -> None:
    cases = [
        {
            "id": f"c{i}",
            "variables": {"who": f"person {i}"},
            "criteria": {"contains": {"value": "echo"}},
        }
        for i in range(3)
    ]
    registry.push(
        alice,
        [
            draft_from_mapping(
                {
                    "kind": "eval_set",
                    "name": "helper-cases",
                    "scorers": [{"name": "contains"}],
                    "cases": cases,
                },
                source="helper-cases.yaml",
            ),
            prompt_draft(name="helper", model="gpt-4o-mini", eval_set="helper-cases"),
        ],
    )
    registry.approve(bob, "prompt", "helper", 1)
    registry.move_alias(
        alice, "prompt", "helper", "production", 1, override=True, reason="first release"
    )
    rows = [
        {
            "request_id": f"req_{when}_{i}",
            "metric": "answer_relevance",
            "source": "online",
            "project_id": alice.project.id,
            "time": utcnow() - (timedelta(days=2) if when == "before" else timedelta(minutes=5)),
            "prompt_name": "helper",
            "prompt_version": 1,
            "arm": None,
            "value": (0.8 if when == "before" else 0.4) + (i % 3) * 0.01,
            "reason": None,
        }
        for when in ("before", "now")
        for i in range(25)
    ]
    CallScores(registry.db).record(rows)
    rule = AlertRule(name="quality", kind="quality_drop", run_evals=True)
    gateway = start_gateway(alerts=[rule])
    thread = GatewayThread(gateway.app.gateway.settings, registry)
    try:
        [firing] = thread.wait(Alerting(thread.gateway).check())
        _wait_for(
            lambda: bool(
                AlertStore(registry.db)
                .recent(alice.project.id, utcnow() - timedelta(hours=1))[0]["evidence"]
                .get("eval_runs")
            )
        )
    finally:
        thread.close()
    [stored] = AlertStore(registry.db).recent(alice.project.id, utcnow() - timedelta(hours=1))
    [run] = stored["evidence"]["eval_runs"]
    assert (run["prompt"], run["passed"]) == ("helper", True) and run["run"].startswith("run_")
    assert firing.evidence["prompts"] == ["helper"]
