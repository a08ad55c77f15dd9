"""Failure patterns name a planted pattern among failed calls, and the weekly review puts
changes, cost, quality, patterns, alerts and pending approvals in one document."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from seamline.monitoring.patterns import failures, patterns
from seamline.monitoring.review import review
from seamline.providers.local_models import minilm_files
from seamline.providers.local_vectors import embed
from seamline.registry import Actor, Registry
from seamline.store.schema import events
from seamline.telemetry.event import CallEvent
from tests.factories import prompt_draft

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")
NOW = datetime.now(UTC)
PLANTED = [
    "my card was declined when paying for the refund",
    "refund failed because the card was declined",
    "declined card on refund, what now",
    "why was my card declined for the refund?",
]
OTHER = [
    "where is my parcel?",
    "how do I change my delivery address?",
    "what are your opening hours?",
    "can I get a student discount?",
    "how long is the warranty?",
    "do you ship to Norway?",
]


def _call(registry: Registry, who: Actor, text: str, ago: timedelta, status: str) -> None:
    event = CallEvent(route="/v1/chat/completions", time=NOW - ago)
    event.project_id, event.project = who.project.id, who.project.name
    event.status, event.error_type = status, ("upstream_error" if status == "error" else None)
    event.model_used, event.cost_usd = "gpt-4o-mini", 0.001
    event.request_content = [{"role": "user", "content": text}]
    with registry.db.write() as conn:
        conn.execute(insert(events).values(**event.to_row()))


def _traffic(registry: Registry, who: Actor) -> None:
    rng = random.Random(4)
    for i in range(16):
        _call(registry, who, rng.choice(PLANTED), timedelta(hours=1 + i), "error")
    for i in range(24):
        _call(
            registry,
            who,
            rng.choice(OTHER),
            timedelta(hours=1 + i),
            "error" if i % 6 == 0 else "ok",
        )


def test_clusters_name_a_planted_failure_pattern(registry: Registry, alice: Actor) -> None:
    _traffic(registry, alice)
    start = NOW - timedelta(days=7)
    with registry.db.read() as conn:
        found = failures(conn, alice.project.id, start, NOW)
    assert len(found) == 20 and all(f.text for f in found)
    made = patterns(found, embed, start, NOW)
    top = made[0]
    assert top.calls >= 14 and {"declined", "refund", "card"} & set(top.name.split(", "))
    assert top.kinds == {"error:upstream_error": top.calls}
    assert top.first_half + top.second_half == top.calls and len(top.examples) == 3


def test_the_review_holds_every_section(registry: Registry, alice: Actor, bob: Actor) -> None:
    _traffic(registry, alice)
    registry.push(alice, [prompt_draft(name="helper", model="gpt-4o-mini")])
    registry.move_alias(alice, "prompt", "helper", "live", 1)
    registry.push(alice, [prompt_draft(name="helper", text="Hi {{ who }}", model="gpt-4o-mini")])
    registry.approve(bob, "prompt", "helper", 2, alias="production")
    end = datetime.now(UTC)  # after the releases above
    found = review(registry.db, alice.project.id, "acme", end - timedelta(days=7), end, embed)
    text = found.markdown()
    for title in (
        "What changed",
        "Cost by calling key",
        "Cost by route",
        "Online quality",
        "Users' feedback",
        "Drift against the window before",
        "Failure patterns",
        "Guard activity",
        "Alerts",
        "Approved, not yet released",
    ):
        assert f"## {title}" in text
    assert "| release |" in text and "| approval |" in text  # what changed, from the audit log
    assert "| prompt helper | 2 | production | bob |" in text
    assert "declined" in text or "refund" in text
    page = found.html()
    assert page.startswith("<!doctype html>") and "<table>" in page and "&lt;" not in page[:200]
