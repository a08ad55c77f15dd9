"""Alerts on live traffic: each rule kind fires on a constructed case and stays quiet on
its control, with evidence and sample calls; an alert is not repeated within its cooldown;
a webhook that is down is retried and the failure recorded; budgets come down the same
channel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from seamline.core.settings import AlertRule, BudgetConfig
from seamline.monitoring.alerts import AlertStore, Firing, evaluate
from seamline.monitoring.delivery import deliver, keep_and_post, record_budget_alert, run_alerts
from seamline.monitoring.quality import CallScores
from seamline.providers.local_models import minilm_files
from seamline.rag.chunking import ChunkerConfig
from seamline.rag.indexes import Indexes, local_embedder
from seamline.rag.store_sqlite import SqliteChunkStore
from seamline.registry import Actor, Registry
from seamline.store.schema import events, feedback
from seamline.telemetry.event import CallEvent
from tests.conftest import make_actor
from tests.stub_upstream import StubUpstream

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[StubUpstream]:
    stub = StubUpstream("hooks").start()
    yield stub
    stub.stop()


def _calls(registry: Registry, who: Actor, count: int, ago: timedelta, **fields: Any) -> list[str]:
    ids = []
    for i in range(count):
        event = CallEvent(route="/v1/chat/completions", time=NOW - ago + timedelta(seconds=i))
        event.project_id, event.project = who.project.id, who.project.name
        event.model_used, event.replica = "gpt-4o-mini", "primary"
        for name, value in fields.items():
            setattr(event, name, value(i) if callable(value) else value)
        with registry.db.write() as conn:
            conn.execute(insert(events).values(**event.to_row()))
        ids.append(event.request_id)
    return ids


def test_an_error_rate_fires_with_its_evidence_once_per_cooldown(
    registry: Registry, alice: Actor, receiver: StubUpstream
) -> None:
    _calls(registry, alice, 30, timedelta(minutes=30))
    failed = _calls(
        registry, alice, 10, timedelta(minutes=20), status="error", error_type="upstream_error"
    )
    calm = make_actor(registry, "carol", project="globex")
    _calls(registry, calm, 40, timedelta(minutes=30))
    rule = AlertRule(name="errors", kind="error_rate", window="1h", above=0.1)
    hook = f"{receiver.base_url.removesuffix('/v1')}/hook"
    [firing] = run_alerts(registry.db, [rule], hook, NOW)
    assert firing.subject == "acme" and firing.value == 0.25
    assert firing.evidence["error_types"] == {"upstream_error": 10}
    assert set(firing.request_ids) <= set(failed) and len(firing.request_ids) == 5
    [posted] = receiver.hooks
    assert posted["text"].startswith("seamline alert errors: acme: 25.0% of 40 calls")
    assert posted["seamline"]["request_ids"] == firing.request_ids
    [stored] = AlertStore(registry.db).recent(alice.project.id, NOW - timedelta(days=1))
    assert stored["delivery"] == {"delivered": True, "attempts": 1}
    assert run_alerts(registry.db, [rule], hook, NOW + timedelta(minutes=5)) == []  # cooldown


def test_latency_and_guard_blocks_fire_above_their_thresholds(
    registry: Registry, alice: Actor
) -> None:
    _calls(registry, alice, 40, timedelta(minutes=30), latency_ms=lambda i: 100.0 + i * 50)
    _calls(registry, alice, 10, timedelta(minutes=20), status="blocked")
    rules = [
        AlertRule(name="slow", kind="latency", percentile=95, above=1500),
        AlertRule(name="slower", kind="latency", percentile=95, above=5000),
        AlertRule(name="blocks", kind="guard_blocks", above=0.1),
    ]
    fired = {f.rule: f for f in evaluate(registry.db, rules, NOW)}
    assert set(fired) == {"slow", "blocks"}
    assert fired["slow"].value is not None and 1500 < fired["slow"].value < 2100
    assert fired["blocks"].value == 0.2


def test_a_tenant_above_its_own_cost_baseline_opens_a_review(
    registry: Registry, alice: Actor
) -> None:
    steady = make_actor(registry, "carol", project="globex")
    for who, now_cost in ((alice, 0.0016), (steady, 0.0011)):  # 160% and 110% of baseline
        _calls(registry, who, 40, timedelta(days=3), cost_usd=0.001)
        _calls(registry, who, 40, timedelta(hours=12), cost_usd=now_cost)
    rule = AlertRule(name="cost", kind="cost_anomaly", window="1d", baseline="7d")
    [firing] = evaluate(registry.db, [rule], NOW)
    assert firing.subject == "acme" and firing.value == pytest.approx(1.6)
    assert "a review is open" in firing.message
    assert firing.evidence["baseline_cost_per_call_usd"] == pytest.approx(0.001)


def test_an_upstream_model_change_under_the_same_name_fires_its_trigger(
    registry: Registry, alice: Actor
) -> None:
    _calls(
        registry,
        alice,
        5,
        timedelta(days=2),
        upstream_model="gpt-4o-mini-2024-07-18",
        system_fingerprint="fp_0aa8d3e20b",
    )
    changed = _calls(
        registry,
        alice,
        5,
        timedelta(minutes=30),
        upstream_model="gpt-4o-mini-2024-07-18",
        system_fingerprint="fp_44709d6fcb",
    )
    rule = AlertRule(name="model", kind="model_change", window="1h")
    [firing] = evaluate(registry.db, [rule], NOW)
    assert firing.subject == "primary (gpt-4o-mini)" and firing.request_ids == [changed[0]]
    assert firing.evidence["before"]["system_fingerprint"] == "fp_0aa8d3e20b"
    assert firing.evidence["now"]["system_fingerprint"] == "fp_44709d6fcb"
    assert "re-run its prompts' evals" in firing.message
    later = NOW + timedelta(hours=2)  # the new build is now what came before: quiet
    assert evaluate(registry.db, [rule], later) == []


def test_a_webhook_that_is_down_is_retried_and_the_failure_kept() -> None:
    waits: list[float] = []
    firing = Firing("errors", "error_rate", None, "acme", "acme: 25% failed")
    outcome = deliver(firing, "http://127.0.0.1:9/hook", sleep=waits.append)
    assert outcome["delivered"] is False and outcome["attempts"] == 3
    assert waits == [1.0, 2.0] and "ConnectError" in outcome["error"]


def test_budget_alerts_come_down_the_same_channel(
    registry: Registry, alice: Actor, receiver: StubUpstream
) -> None:
    budget = BudgetConfig(name="acme", limit_usd=10.0)
    hook = f"{receiver.base_url.removesuffix('/v1')}/hook"
    record_budget_alert(registry.db, budget, "warning", 8.5, hook, NOW)
    [stored] = AlertStore(registry.db).recent(alice.project.id, NOW - timedelta(hours=1))
    assert stored["kind"] == "budget" and stored["delivery"]["delivered"] is True
    assert receiver.hooks[0]["text"].startswith("seamline alert budget:acme: budget warning")


def test_a_significant_quality_drop_fires_and_noise_does_not(
    registry: Registry, alice: Actor
) -> None:
    rows = []
    for i in range(30):
        for prompt, before, now in (("support", 0.8, 0.55), ("faq", 0.8, 0.79)):
            for when, value in ((timedelta(days=2), before), (timedelta(minutes=30), now)):
                rows.append(
                    {
                        "request_id": f"req_{prompt}_{when.days}_{i}",
                        "metric": "answer_relevance",
                        "source": "online",
                        "project_id": alice.project.id,
                        "time": NOW - when + timedelta(seconds=i),
                        "prompt_name": prompt,
                        "prompt_version": 1,
                        "arm": None,
                        "value": value + (i % 5) * 0.02,
                        "reason": None,
                    }
                )
    CallScores(registry.db).record(rows)
    rule = AlertRule(name="quality", kind="quality_drop", window="1h", baseline="7d")
    [firing] = evaluate(registry.db, [rule], NOW)
    assert firing.subject == "acme / support" and firing.value == pytest.approx(0.25)
    assert firing.evidence["p_worse"] < 0.01 and len(firing.request_ids) == 5


def test_a_drop_in_thumbs_up_fires_for_its_prompt(registry: Registry, alice: Actor) -> None:
    rows = []
    for ago, up_share in ((timedelta(days=2), 0.9), (timedelta(minutes=30), 0.4)):
        ids = _calls(registry, alice, 40, ago, prompt_name="support", prompt_version=1)
        for i, request_id in enumerate(ids):
            rows.append(
                {
                    "project_id": alice.project.id,
                    "target": f"request:{request_id}",
                    "request_id": request_id,
                    "user_key": f"u{i}",
                    "metric": "thumbs",
                    "value": 1.0 if i < up_share * len(ids) else 0.0,
                    "tags": [],
                    "source": "api",
                    "created_at": NOW - ago,
                    "updated_at": NOW - ago,
                }
            )
    with registry.db.write() as conn:
        conn.execute(insert(feedback), rows)
    rule = AlertRule(name="thumbs", kind="feedback_drop", window="1h", above=0.2)
    [firing] = evaluate(registry.db, [rule], NOW)
    assert firing.subject == "acme / support" and firing.value == pytest.approx(0.5)
    assert "thumbs of prompt support fell by 0.500" in firing.message


@pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")
def test_a_stale_index_that_calls_read_from_fires_its_trigger(
    registry: Registry, alice: Actor, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("Refunds take 14 days.")
    (docs / "delivery.md").write_text("We deliver to Norway.")
    store = SqliteChunkStore(tmp_path / "indexes.db")
    Indexes(registry, alice, store, local_embedder()).ingest([docs], "help", ChunkerConfig())
    store.close()
    _calls(registry, alice, 3, timedelta(minutes=30), index_version="help@1", prompt_name="answer")
    rule = AlertRule(name="stale", kind="stale_index")
    assert evaluate(registry.db, [rule], NOW) == []  # fresh
    (docs / "refunds.md").write_text("Refunds take 30 days.")
    [firing] = evaluate(registry.db, [rule], NOW)
    assert firing.subject == "help@1" and firing.evidence["prompts"] == ["answer"]
    assert [Path(s["uri"]).name for s in firing.evidence["stale"]] == ["refunds.md"]


@pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")
def test_negative_feedback_clustering_on_one_pattern_fires(
    registry: Registry, alice: Actor
) -> None:
    planted = ["my card was declined for the refund", "refund declined on my card"]
    other = ["where is my parcel", "opening hours please", "student discount?"]
    rows = []
    for i in range(12):
        text = planted[i % 2] if i < 9 else other[i % 3]
        [request_id] = _calls(
            registry,
            alice,
            1,
            timedelta(minutes=50 - i),
            request_content=[{"role": "user", "content": text}],
            prompt_name="support",
        )
        rows.append(
            {
                "project_id": alice.project.id,
                "target": f"request:{request_id}",
                "request_id": request_id,
                "user_key": "u",
                "metric": "thumbs",
                "value": 0.0,
                "tags": [],
                "source": "api",
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    with registry.db.write() as conn:
        conn.execute(insert(feedback), rows)
    rule = AlertRule(name="pattern", kind="feedback_pattern", min_calls=5)
    [firing] = evaluate(registry.db, [rule], NOW)
    assert firing.value is not None and firing.value >= 8
    assert {"declined", "refund", "card"} & set(firing.evidence["pattern"]["name"].split(", "))
    assert firing.evidence["prompts"] == ["support"] and firing.evidence["negative"] == 12


def test_workers_checking_at_once_keep_one_alert_and_projects_do_not_silence_each_other(
    registry: Registry, alice: Actor
) -> None:
    carol = make_actor(registry, "carol", project="globex")
    for who in (alice, carol):  # the same deployment serves both projects, and changed
        _calls(registry, who, 3, timedelta(days=2), upstream_model="m", system_fingerprint="fp_1")
        _calls(
            registry, who, 3, timedelta(minutes=10), upstream_model="m", system_fingerprint="fp_2"
        )
    rule = AlertRule(name="model", kind="model_change")
    first, second = evaluate(registry.db, [rule], NOW), evaluate(registry.db, [rule], NOW)
    assert sorted(f.project_id for f in first) == sorted([alice.project.id, carol.project.id])
    store = AlertStore(registry.db)
    kept = [keep_and_post(store, f, NOW, None) for f in first + second]
    assert kept == [True, True, False, False]  # the second worker's copies are refused
