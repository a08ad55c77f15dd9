"""Conversation replay: a recorded session's turns asked again of another prompt version,
answer beside answer; a session logged without content says there is nothing to replay."""

from __future__ import annotations

import pytest

from seamline.core.errors import InvalidInput, NotFound
from seamline.gateway.chat import EvalModelCall
from seamline.gateway.core import GatewayThread
from seamline.monitoring.replay import replay, session_calls
from seamline.providers.local_models import minilm_files
from seamline.registry import Actor, Registry
from seamline.registry.prompt import Prompt
from tests.factories import prompt_draft
from tests.gateway.conftest import RunningGateway

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")


def _prompt(registry: Registry, alice: Actor, name: str, number: int) -> Prompt:
    return Prompt.from_record(registry.get_version(alice, "prompt", name, number))


def test_a_session_is_replayed_against_another_prompt_version(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    for text in ("Answer briefly: {{ who }}", "Answer in detail, citing policy: {{ who }}"):
        registry.push(alice, [prompt_draft(name="helper", text=text, model="gpt-4o-mini")])
    for question in ("refund window?", "delivery to Norway?"):
        gateway.client().chat.completions.create(
            model="prompt:helper@1",
            messages=[],
            metadata={"session_id": "sess-1"},
            extra_body={"seamline": {"variables": {"who": question}}},
        )
    gateway.events(expected=2)
    with registry.db.read() as conn:
        rows = session_calls(conn, alice.project.id, "sess-1")
    thread = GatewayThread(gateway.app.gateway.settings, registry)
    try:
        turns = thread.wait(
            replay(
                rows,
                EvalModelCall(thread.gateway, alice),
                prompt_of=lambda name, number: _prompt(registry, alice, name, number),
                target=_prompt(registry, alice, "helper", 2),
                scorers=[{"name": "length", "max_chars": 1000}],
            )
        )
    finally:
        thread.close()
    assert [t.original for t in turns] == [
        "[primary] echo: Answer briefly: refund window?",
        "[primary] echo: Answer briefly: delivery to Norway?",
    ]
    assert turns[0].replayed == "[primary] echo: Answer in detail, citing policy: refund window?"
    assert all(t.error is None and 0 < (t.similarity or 0) < 1 for t in turns)
    assert set(turns[0].scores["length"]) == {"original", "replayed"}
    replayed = [e for e in gateway.events(expected=4) if e["use_case"] == "replay"]
    assert len(replayed) == 2 and all(e["prompt_name"] is None for e in replayed)


def test_a_session_without_content_or_unknown_cannot_be_replayed(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    registry.set_content_logging(alice, "none")
    gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        metadata={"session_id": "sess-2"},
    )
    gateway.events()
    with registry.db.read() as conn:
        with pytest.raises(InvalidInput, match="logged without content"):
            session_calls(conn, alice.project.id, "sess-2")
        with pytest.raises(NotFound, match="no session 'sess-9'"):
            session_calls(conn, alice.project.id, "sess-9")
