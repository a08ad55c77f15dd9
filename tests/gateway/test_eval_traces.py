"""Production calls made through the gateway become eval cases with their real inputs (the
prompt's variables and the caller's own messages), as the content policy kept them; side
calls and repeated inputs do not."""

from __future__ import annotations

from datetime import timedelta

from seamline.core.clock import utcnow
from seamline.evals.coverage import (
    calibrated_threshold,
    group_coverage,
    input_text,
    production_inputs,
)
from seamline.evals.traces import TraceFilter, sample_cases
from seamline.providers.local_vectors import embed
from seamline.registry import Actor, Registry
from seamline.registry.workspace import local_actor
from tests.factories import prompt_draft
from tests.gateway.conftest import RunningGateway


def _ask(gateway: RunningGateway, who: str, *extra: str, use_case: str | None = None) -> None:
    gateway.client().chat.completions.create(
        model="prompt:greeter@staging",
        messages=[{"role": "user", "content": text} for text in extra],
        extra_body={"seamline": {"variables": {"who": who}}},
        metadata={"use_case": use_case} if use_case else None,
    )


def test_calls_become_cases_with_their_inputs_as_the_content_policy_kept_them(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft(model="gpt-4o-mini")])
    registry.move_alias(alice, "prompt", "greeter", "staging", 1)
    _ask(gateway, "Ada")
    _ask(gateway, "Ada")  # the same inputs: one case
    _ask(gateway, "Bob", "and how are you?")
    _ask(gateway, "Eve", use_case="eval")  # an eval run's own call: never sampled
    gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "no prompt here"}]
    )
    admin = local_actor(registry.db, alice.project.name, "admin")
    registry.set_content_logging(admin, "redacted")
    _ask(gateway, "jane.doe@example.org")
    registry.set_content_logging(admin, "none")
    _ask(gateway, "Zed")
    gateway.events(expected=7)

    with registry.db.read() as conn:
        sampled = sample_cases(
            conn,
            alice.project.id,
            TraceFilter(prompt="greeter"),
            limit=10,
            prompt_messages=lambda name, version: 2,  # the greeter's system and user templates
        )
    inputs = sorted(
        (case["variables"]["who"], [m["content"] for m in case.get("messages", [])])
        for case in sampled.cases
    )
    assert inputs == [("Ada", []), ("Bob", ["and how are you?"]), ("[EMAIL]", [])]
    assert sampled.matched == 5  # the eval call and the prompt-less call never matched
    assert sampled.skipped == {
        "same inputs as a case already in the set": 1,
        "content not logged (the project's content policy)": 1,
    }
    assert all(case["id"].startswith("trace-req") for case in sampled.cases)
    assert all("from-traces" in case["tags"] for case in sampled.cases)


def test_coverage_says_which_calls_no_case_is_near_and_groups_them(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft(model="gpt-4o-mini")])
    registry.move_alias(alice, "prompt", "greeter", "staging", 1)
    for who in ("How do I reset my password?", "What is the capital of Australia?"):
        _ask(gateway, who)
    _ask(gateway, "Which city is the capital of Australia?")
    registry.set_content_logging(local_actor(registry.db, alice.project.name, "admin"), "none")
    _ask(gateway, "How do I reset my password?")
    gateway.events(expected=4)

    threshold = calibrated_threshold(embed)
    assert 0.5 < threshold.cosine < 0.9 and threshold.pairs == 80
    assert threshold.paraphrase_recall > threshold.near_miss_rate
    with registry.db.read() as conn:
        groups = production_inputs(
            conn, alice.project.id, utcnow() - timedelta(hours=1), None, lambda n, v: 2
        )
    assert list(groups) == [("greeter", None)]
    cases = [{"variables": {"who": "How do I reset my password?"}}]
    vectors = embed([input_text(c["variables"], None) for c in cases])
    found = group_coverage(
        "greeter", None, groups[("greeter", None)], vectors, embed, threshold.cosine
    )
    assert (found.calls, found.compared, found.covered) == (4, 3, 1)
    [cluster] = found.uncovered  # the two ways of asking for Australia's capital, together
    assert cluster.size == 2 and all("Australia" in text for text in cluster.examples)
