"""Anthropic-SDK clients on ``POST /v1/messages``: any model the gateway serves, through the
same request path as chat (one event per call, tokens and cost), with Anthropic's own
blocks, stream events and errors."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import pytest

from seamline.core.settings import ModelConfig, ModelPrices
from tests.gateway.conftest import RunningGateway, default_models
from tests.stub_upstream import StubUpstream

WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def claude_sdk(gateway: RunningGateway, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key or gateway.key, max_retries=0)


@pytest.fixture
def mixed(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> RunningGateway:
    """The default OpenAI-speaking models, and a model served by an Anthropic upstream."""
    claude = ModelConfig(
        name="claude",
        provider="anthropic",
        upstream_model="claude-sonnet-4-x",
        base_url=f"http://127.0.0.1:{upstreams['secondary'].port}",
        api_key="sk-ant-test",
        prices=ModelPrices(input=3.0, output=15.0),
    )
    return start_gateway([*default_models(upstreams), claude])


def test_a_message_onto_an_openai_model(gateway: RunningGateway) -> None:
    reply = claude_sdk(gateway).messages.create(
        model="gpt-4o-mini",
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
        stop_sequences=["END"],
        output_config={"format": {"type": "json_schema", "schema": CITY}, "effort": "low"},
        extra_body={"temperature": 0.3},  # older clients send it; the current SDK does not
    )
    sent = gateway.upstreams["primary"].requests[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert (sent["max_tokens"], sent["stop"], sent["temperature"]) == (50, ["END"], 0.3)
    assert sent["response_format"]["json_schema"]["schema"] == CITY
    assert "effort" not in str(sent)
    assert reply.type == "message" and reply.stop_reason == "end_turn"
    assert reply.content[0].text == "[primary] echo: hello there"  # type: ignore[union-attr]
    [event] = gateway.events()
    assert (event["route"], event["status"], event["model_used"]) == (
        "/v1/messages",
        "ok",
        "gpt-4o-mini",
    )
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (
        event["prompt_tokens"],
        event["completion_tokens"],
    )
    assert event["cost_usd"] > 0


def test_a_streamed_message(gateway: RunningGateway) -> None:
    with claude_sdk(gateway).messages.stream(
        model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "hello there"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "[primary] echo: hello there"
    assert final.stop_reason == "end_turn"
    [event] = gateway.events()
    assert (event["stream"], event["status"]) == (True, "ok")
    assert final.usage.output_tokens == event["completion_tokens"] > 0
    assert final.usage.input_tokens == event["prompt_tokens"]


def test_tool_use_round_trip_through_an_anthropic_upstream(mixed: RunningGateway) -> None:
    client = claude_sdk(mixed)
    reply = client.messages.create(
        model="claude",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    [call] = reply.content
    assert (reply.stop_reason, call.type) == ("tool_use", "tool_use")
    assert (call.name, call.input) == ("get_weather", {"city": "Oslo"})  # type: ignore[union-attr]
    assert mixed.upstreams["secondary"].requests[-1]["tool_choice"] == {"type": "any"}

    with client.messages.stream(
        model="claude",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        streamed = stream.get_final_message()
    [streamed_call] = streamed.content
    assert streamed_call.input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert streamed.stop_reason == "tool_use"

    client.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    )
    sent = mixed.upstreams["primary"].requests[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "toolu_1"
    assert sent[1]["content"] == "Let me look."
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"}
    assert sent[3] == {"role": "user", "content": "And tomorrow?"}


def test_count_tokens(gateway: RunningGateway) -> None:
    client = claude_sdk(gateway)
    short = client.messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi " * 50}]
    )
    assert 0 < short.input_tokens < long.input_tokens


def test_errors_come_in_anthropic_shape(gateway: RunningGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        claude_sdk(gateway, "sk-seam-wrong").messages.create(
            model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude_sdk(gateway).messages.create(
            model="gpt-4o-mini",
            max_tokens=5,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": refused.value.body["error"]["message"],  # type: ignore[index]
        },
    }
    assert "server tools" in str(refused.value)
    missing = httpx.post(
        f"{gateway.url}/v1/messages",
        headers={"x-api-key": gateway.key},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing.json()["error"]["message"]
    assert not gateway.upstreams["primary"].requests
