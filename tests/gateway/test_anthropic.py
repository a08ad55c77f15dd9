"""OpenAI clients calling an Anthropic model through the gateway, tools and streams included."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from seamline.core.settings import ModelConfig, ModelPrices
from tests.gateway.conftest import RunningGateway
from tests.stub_upstream import StubUpstream

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def claude(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> RunningGateway:
    model = ModelConfig(
        name="claude",
        provider="anthropic",
        upstream_model="claude-sonnet-4-x",
        base_url=f"http://127.0.0.1:{upstreams['primary'].port}",
        api_key="sk-ant-test",
        prices=ModelPrices(input=3.0, output=15.0, cached_input=0.3),
    )
    return start_gateway([model])


def test_request_translation(claude: RunningGateway) -> None:
    claude.client().chat.completions.create(
        model="claude",
        temperature=1.5,
        max_tokens=100,
        stop="END",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
            {"role": "user", "content": "Thanks, and tomorrow?"},
        ],
    )
    sent = claude.upstreams["primary"].requests[-1]
    assert sent["headers"]["x-api-key"] == "sk-ant-test"
    assert sent["model"] == "claude-sonnet-4-x" and sent["system"] == "Be brief."
    assert (sent["max_tokens"], sent["temperature"], sent["stop_sequences"]) == (100, 1.0, ["END"])
    assert [t["role"] for t in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny"},
        {"type": "text", "text": "Thanks, and tomorrow?"},
    ]


def test_text_answer_and_usage_with_cached_tokens(claude: RunningGateway) -> None:
    reply = claude.client().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "[primary] hello"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    ) == (14, 5)
    [event] = claude.events()
    assert (event["provider"], event["prompt_tokens"], event["cached_tokens"]) == (
        "anthropic",
        14,
        3,
    )
    assert event["cost_usd"] == pytest.approx((11 * 3.0 + 3 * 0.3 + 5 * 15.0) / 1e6)


def test_tool_calls_come_back_in_openai_form(claude: RunningGateway) -> None:
    reply = claude.client().chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )  # type: ignore[list-item]
    sent = claude.upstreams["primary"].requests[-1]
    assert sent["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    assert sent["tool_choice"] == {"type": "any"}
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_1",
        "get_weather",
        {"city": "Oslo"},
    )


def test_streamed_text_and_tool_calls(claude: RunningGateway) -> None:
    client = claude.client()
    chunks = list(
        client.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "hello there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "[primary] hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    tool_chunks = list(
        client.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "weather"}],
            stream=True,
            tools=[WEATHER_TOOL],
        )
    )  # type: ignore[list-item]
    calls = [
        c.choices[0].delta.tool_calls
        for c in tool_chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]
    arguments = "".join(call[0].function.arguments or "" for call in calls)  # type: ignore[union-attr]
    assert calls[0][0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(arguments) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in tool_chunks if c.choices][-1] == "tool_calls"
    rows = claude.events(2)
    assert [r["completion_tokens"] for r in rows] == [5, 5]


class City(BaseModel):
    city: str


def test_structured_output_through_a_forced_output_tool(claude: RunningGateway) -> None:
    client = claude.client()
    parsed = client.chat.completions.parse(
        model="claude",
        messages=[{"role": "user", "content": "Where is it sunny?"}],
        response_format=City,
    )
    sent = claude.upstreams["primary"].requests[-1]
    [tool] = sent["tools"]
    assert tool["input_schema"]["properties"] == {"city": {"title": "City", "type": "string"}}
    assert sent["tool_choice"] == {"type": "tool", "name": tool["name"]}
    choice = parsed.choices[0]
    assert (choice.finish_reason, choice.message.parsed) == ("stop", City(city="Oslo"))
    assert not choice.message.tool_calls

    chunks = list(
        client.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "Where is it sunny?"}],
            response_format={"type": "json_object"},
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_structured_output_beside_real_tools_leaves_the_tools_callable(
    claude: RunningGateway,
) -> None:
    reply = claude.client().chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        response_format={"type": "json_object"},
    )  # type: ignore[list-item]
    sent = claude.upstreams["primary"].requests[-1]
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "structured_output"]
    assert sent["tool_choice"] == {"type": "any"}
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]
