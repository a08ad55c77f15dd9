"""The exact response cache: a repeat costs nothing, and streams replay as streams."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from seamline.core.settings import ModelConfig
from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from tests.gateway.conftest import RunningGateway
from tests.stub_upstream import StubUpstream

HELLO = [{"role": "user", "content": "hello there"}]


def test_a_repeated_call_is_answered_from_the_cache(
    start_gateway: Callable[..., RunningGateway],
) -> None:
    gateway = start_gateway(cache_ttl_s=60)
    client = gateway.client()
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert (first.headers["x-seamline-cache"], second.headers["x-seamline-cache"]) == (
        "miss",
        "hit",
    )
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(gateway.upstreams["primary"].requests) == 1
    other = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, temperature=0.5)
    assert other.choices[0].message.content  # another parameter: another entry
    assert len(gateway.upstreams["primary"].requests) == 2
    rows = gateway.events(3)
    assert [r["cache_hit"] for r in rows] == [False, True, False]
    assert rows[1]["cost_usd"] == 0.0 and rows[0]["cost_usd"] > 0
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'seamline_cache_hits_total{model="gpt-4o-mini"} 1.0' in metrics


def test_a_cached_answer_replays_as_a_stream(start_gateway: Callable[..., RunningGateway]) -> None:
    gateway = start_gateway(cache_ttl_s=60)
    client = gateway.client()
    live = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    replay = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )

    def text(chunks: list) -> str:  # type: ignore[type-arg]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert text(replay) == text(live) == "[primary] echo: hello there"
    assert replay[-1].usage is not None and replay[-1].usage.completion_tokens == 4
    assert len(gateway.upstreams["primary"].requests) == 1
    assert [r["cache_hit"] for r in gateway.events(2)] == [False, True]


def test_callers_can_opt_out_and_the_cache_is_off_by_default(
    start_gateway: Callable[..., RunningGateway],
) -> None:
    cached = start_gateway(cache_ttl_s=60)
    for _ in range(2):
        cached.client().chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, extra_body={"seamline": {"cache": False}}
        )
    assert len(cached.upstreams["primary"].requests) == 2
    plain = start_gateway()
    for _ in range(2):
        reply = plain.client().chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO
        )
        assert "x-seamline-cache" not in reply.headers
    assert len(plain.upstreams["primary"].requests) == 4


def test_calls_routed_to_different_models_never_share_an_answer(
    start_gateway: Callable[..., RunningGateway],
    registry: Registry,
    alice: Actor,
    upstreams: dict[str, StubUpstream],
) -> None:
    fast, fast_info = registry.create_key(
        alice, owner="a", scopes=frozenset({Scope.INVOKE}), name="fast"
    )
    slow, _ = registry.create_key(alice, owner="b", scopes=frozenset({Scope.INVOKE}), name="slow")
    models = [
        ModelConfig(name="small", base_url=upstreams["primary"].base_url),
        ModelConfig(name="large", base_url=upstreams["backup"].base_url),
    ]
    gateway = start_gateway(
        models,
        cache_ttl_s=60,
        key=fast,
        tier_rules=[
            {"model": "auto", "key": fast_info.id, "target": "small"},
            {"model": "auto", "target": "large"},
        ],
    )
    first = gateway.client(fast).chat.completions.create(model="auto", messages=HELLO)
    second = gateway.client(slow).chat.completions.create(model="auto", messages=HELLO)
    assert first.choices[0].message.content.startswith("[primary]")  # type: ignore[union-attr]
    assert second.choices[0].message.content.startswith("[backup]")  # type: ignore[union-attr]
