"""Semantic drift: a planted topic is detected and named, A/A windows are not flagged, a
window too small to test says so, and calls through the gateway are embedded off the
request path (never for a project that logs no content)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from seamline.core.settings import AlertRule
from seamline.monitoring.alerts import evaluate
from seamline.monitoring.drift import holm, mmd_test, topic_shift, topics
from seamline.monitoring.drift_report import drift_report
from seamline.monitoring.embeddings import (
    CallEmbedder,
    CallEmbeddingStore,
    CallInput,
    dequantise,
    quantise,
)
from seamline.providers.local_models import minilm_files
from seamline.providers.local_vectors import embed
from seamline.registry import Actor, Registry
from seamline.telemetry.event import CallEvent
from seamline.telemetry.event_insert import insert_events

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")

ITEMS = ["laptop", "phone", "monitor", "keyboard", "camera", "tablet"]
USUAL = {
    "refund": ["how do I get a refund for my {}?", "can I return the {} for my money back?"],
    "delivery": ["where is my {} delivery?", "when will the {} arrive?"],
    "warranty": ["is my {} under warranty?", "does the warranty cover my {}?"],
    "invoice": ["please send the invoice for my {}", "I need a receipt for the {}"],
}
PLANTED = ["how do I cancel my subscription to the {} plan?", "stop the {} membership billing"]
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def _texts(templates: list[str], count: int, rng: random.Random) -> list[str]:
    pool = [t.format(item) for t, item in itertools.product(templates, ITEMS)]
    return [rng.choice(pool) for _ in range(count)]


def _usual(count: int, rng: random.Random) -> list[str]:
    return _texts([t for group in USUAL.values() for t in group], count, rng)


def test_int8_vectors_keep_their_cosines() -> None:
    vectors = embed(["refund for my laptop", "where is my parcel", "cancel my plan"])
    stored = np.vstack([dequantise(quantise(v)) for v in vectors])
    assert np.abs(stored @ stored.T - vectors @ vectors.T).max() < 0.01
    assert len(quantise(vectors[0])) == 384


def test_a_planted_topic_is_detected_and_a_a_windows_are_not() -> None:
    rng = random.Random(7)
    reference = embed(_usual(200, rng))
    same = embed(_usual(200, rng))
    shifted_texts = _usual(170, rng) + _texts(PLANTED, 30, rng)
    shifted = embed(shifted_texts)
    assert mmd_test(reference, same, seed=1).p_value > 0.05
    caught = mmd_test(reference, shifted, seed=1)
    assert caught.p_value < 0.01 and caught.mmd2 > 0
    texts = {200 + i: text for i, text in enumerate(shifted_texts)}
    found = topics(reference, shifted, texts)
    grown = max(found, key=lambda t: t.current - t.reference)
    assert {"cancel", "subscription", "membership", "billing", "plan"} & set(grown.terms)
    assert grown.reference == 0
    assert sum(t.current for t in found if t.reference == 0) >= 25  # the planted calls
    assert 0.1 <= topic_shift(found) <= 0.25


def test_holm_adjusts_each_p_value_for_the_family() -> None:
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5]) == [0.5]


def _record(
    registry: Registry, alice: Actor, texts: list[str], start: datetime, **call: str
) -> None:
    embedder = CallEmbedder(CallEmbeddingStore(registry.db), embed, "local-minilm:test")
    for i, text in enumerate(texts):
        event = CallEvent(route="/v1/chat/completions", time=start + timedelta(minutes=i))
        event.project_id, event.project = alice.project.id, alice.project.name
        event.prompt_name, event.prompt_version = call.get("prompt"), 1
        event.use_case = call.get("use_case")
        event.request_content = [{"role": "user", "content": text}]
        with registry.db.write() as conn:
            insert_events(conn, [event], postgres=registry.db.is_postgres)
        embedder.queue.submit(
            CallInput(
                event.request_id,
                alice.project.id,
                event.time,
                event.prompt_name,
                1,
                event.use_case,
                None,
                text,
            )
        )
    embedder.queue.wait()
    embedder.queue.close()


def test_the_report_flags_the_drifted_prompt_and_names_what_grew(
    registry: Registry, alice: Actor
) -> None:
    rng = random.Random(3)
    before, after = NOW - timedelta(days=14), NOW - timedelta(days=7)
    _record(registry, alice, _usual(120, rng), before, prompt="support")
    _record(registry, alice, _usual(90, rng) + _texts(PLANTED, 30, rng), after, prompt="support")
    _record(registry, alice, _usual(60, rng), before, prompt="faq")
    _record(registry, alice, _usual(60, rng), after, prompt="faq")
    _record(registry, alice, _usual(10, rng), after, prompt="tiny")
    report = drift_report(registry.db, alice.project.id, (before, after), (after, NOW)).as_record()
    by_prompt = {group["prompt"]: group for group in report["groups"]}
    support, faq, tiny = by_prompt["support"], by_prompt["faq"], by_prompt["tiny"]
    assert support["drifted"] and support["adjusted_p"] < 0.05
    top = support["topics"][0]
    assert top["reference_share"] == 0.0
    new = [t for t in support["topics"] if t["reference_share"] == 0.0]
    assert sum(t["current_share"] for t in new) > 0.2  # 30 of 120 calls planted
    assert {"cancel", "subscription", "membership", "billing", "plan"} & set(top["terms"])
    assert any("subscription" in e or "membership" in e for e in top["examples"])
    assert not faq["drifted"] and faq["adjusted_p"] > 0.05
    assert "p_value" not in tiny and "too few calls to test: 0 and 10" in tiny["note"]


def test_a_drift_alert_names_the_prompt_and_what_grew(registry: Registry, alice: Actor) -> None:
    rng = random.Random(11)
    before, after = NOW - timedelta(days=14), NOW - timedelta(days=7)
    _record(registry, alice, _usual(100, rng), before, prompt="support")
    _record(registry, alice, _usual(70, rng) + _texts(PLANTED, 30, rng), after, prompt="support")
    rule = AlertRule(name="drift", kind="drift", window="7d", baseline="7d")
    [firing] = evaluate(registry.db, [rule], NOW)
    assert firing.subject == "acme / support / -" and firing.evidence["prompts"] == ["support"]
    assert "drifted" in firing.message and (
        "subscription" in firing.message or "membership" in firing.message
    )
