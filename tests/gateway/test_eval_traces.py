"""Production calls made through the gateway become eval cases with their real inputs (the
prompt's variables and the caller's own messages), as the content policy kept them; side
calls and repeated inputs do not."""

from __future__ import annotations

from seamline.evals.traces import TraceFilter, sample_cases
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
