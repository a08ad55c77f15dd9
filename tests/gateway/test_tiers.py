"""Tier rules and the context-window fallback pick the model that serves a call."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from seamline.core.settings import ModelConfig
from tests.gateway.conftest import PRICE, RunningGateway
from tests.stub_upstream import StubUpstream


def _models(upstreams: dict[str, StubUpstream], **small: object) -> list[ModelConfig]:
    return [
        ModelConfig(name="small", base_url=upstreams["primary"].base_url, prices=PRICE, **small),  # type: ignore[arg-type]
        ModelConfig(name="large", base_url=upstreams["backup"].base_url, prices=PRICE),
    ]


def test_rules_route_by_use_case_and_prompt_size(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    gateway = start_gateway(
        _models(upstreams),
        tier_rules=[
            {"model": "auto", "use_case": "legal", "target": "large"},
            {"model": "auto", "max_prompt_tokens": 50, "target": "small"},
            {"model": "auto", "target": "large"},
        ],
    )
    client = gateway.client()

    def served(content: str, use_case: str | None = None) -> str:
        reply = client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": content}],
            metadata={"use_case": use_case} if use_case else None,
        )  # type: ignore[arg-type]
        return reply.choices[0].message.content.split("]")[0] + "]"  # type: ignore[union-attr]

    assert served("short question") == "[primary]"
    assert served("short question", use_case="legal") == "[backup]"
    assert served("long question " * 100) == "[backup]"
    rows = gateway.events(3)
    assert [(r["model_requested"], r["model_used"]) for r in rows] == [
        ("auto", "small"),
        ("auto", "large"),
        ("auto", "large"),
    ]


def test_unmatched_virtual_model_is_a_404(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    gateway = start_gateway(
        _models(upstreams), tier_rules=[{"model": "auto", "use_case": "legal", "target": "large"}]
    )
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )


def test_prompts_too_big_for_the_window_go_to_the_larger_model(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    gateway = start_gateway(_models(upstreams, context_window=60, context_fallback="large"))
    client = gateway.client()
    small = client.chat.completions.create(
        model="small", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    big = client.chat.completions.create(
        model="small", max_tokens=10, messages=[{"role": "user", "content": "word " * 80}]
    )
    assert small.choices[0].message.content.startswith("[primary]")  # type: ignore[union-attr]
    assert big.choices[0].message.content.startswith("[backup]")  # type: ignore[union-attr]
