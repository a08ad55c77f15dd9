"""OpenAI's Responses API (``client.responses``) onto the chat request path: text, streams,
function tools, structured output, seamline prompts, and what is refused by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from seamline.core.settings import ModelConfig, ModelPrices
from seamline.gateway.dialects.responses_output import chat_to_response
from seamline.registry import Actor, Registry
from tests.factories import prompt_draft
from tests.gateway.conftest import RunningGateway
from tests.stub_upstream import StubUpstream

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": None,
}


STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest.fixture
def claude(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> RunningGateway:
    """A gateway whose model answers with tool calls when offered tools: an Anthropic stub
    behind the chat path (the chat stub only echoes)."""
    model = ModelConfig(
        name="claude",
        provider="anthropic",
        upstream_model="claude-sonnet-4-x",
        base_url=f"http://127.0.0.1:{upstreams['primary'].port}",
        api_key="sk-ant-test",
        prices=ModelPrices(input=3.0, output=15.0),
    )
    return start_gateway([model])


def _stream(gateway: RunningGateway, **body: Any) -> list[Any]:
    """A stream's events as sent, each checked against the SDK's types by validation (the
    SDK's client builds its objects without it), its SSE name against its type."""
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={**body, "stream": True},
    ) as reply:
        text = reply.read().decode()
    events = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n", 1)
        event = STREAM_EVENT.validate_json(data.removeprefix("data: "))
        assert name == f"event: {event.type}"
        events.append(event)
    return events


def test_text_answer_through_the_openai_sdk(gateway: RunningGateway) -> None:
    raw = gateway.client().responses.with_raw_response.create(
        model="gpt-4o-mini", input="hello there"
    )
    Response.model_validate(raw.http_response.json())  # what the SDK only constructs
    response = raw.parse()
    assert response.output_text == "[primary] echo: hello there"
    assert (response.status, response.model) == ("completed", "gpt-4o-mini")
    assert response.id.startswith("resp_")
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")  # type: ignore[union-attr]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 4)
    assert response.usage.total_tokens == 6
    assert gateway.upstreams["primary"].requests[-1]["messages"] == [
        {"role": "user", "content": "hello there"}
    ]
    [event] = gateway.events()
    assert (event["route"], event["status"], event["http_status"]) == ("/v1/responses", "ok", 200)
    assert (event["prompt_tokens"], event["completion_tokens"]) == (2, 4)
    assert event["cost_usd"] == pytest.approx((2 * 1.0 + 4 * 2.0) / 1e6)
    again = gateway.client().responses.create(model="gpt-4o-mini", input="hello there")
    assert again.id != response.id  # the upstream reuses its completion id; responses don't


def test_instructions_input_items_and_settings_reach_the_upstream_as_chat(
    gateway: RunningGateway,
) -> None:
    gateway.client().responses.create(
        model="gpt-4o-mini",
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Answer in English."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in "},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AAAA",
                        "detail": "low",
                    },
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "A cat.", "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": "{}",
            },
            {
                "type": "function_call",
                "call_id": "call_2",
                "name": "get_weather",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": "Rain"},
            {"role": "user", "content": "Thanks"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_object"}, "verbosity": "low"},
        max_output_tokens=50,
        temperature=0.2,
        reasoning={"effort": "low"},
        metadata={"user_id": "u-1", "session_id": "s-1"},
        store=True,
    )
    sent = gateway.upstreams["primary"].requests[-1]
    call = {"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in "},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "A cat.",
            "tool_calls": [{"id": "call_1", **call}, {"id": "call_2", **call}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Rain"},
        {"role": "user", "content": "Thanks"},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert (sent["response_format"], sent["verbosity"]) == ({"type": "json_object"}, "low")
    assert (sent["max_completion_tokens"], sent["temperature"]) == (50, 0.2)
    assert (sent["reasoning_effort"], sent["parallel_tool_calls"]) == ("low", False)
    assert not {"store", "metadata", "input", "instructions", "text"} & set(sent)
    [event] = gateway.events()
    assert (event["user_id"], event["session_id"]) == ("u-1", "s-1")


def test_a_response_echoes_the_settings_it_was_asked_with(gateway: RunningGateway) -> None:
    settings: dict[str, Any] = {
        "instructions": "Answer briefly.",
        "temperature": 0.3,
        "top_p": 0.9,
        "max_output_tokens": 64,
        "metadata": {"ticket": "T-1"},
        "tools": [WEATHER_TOOL],
        "tool_choice": "none",
        "parallel_tool_calls": False,
        "text": {"format": {"type": "text"}},
    }
    whole = gateway.client().responses.create(model="gpt-4o-mini", input="hi", **settings)
    streamed = _stream(gateway, model="gpt-4o-mini", input="hi", **settings)
    completed = streamed[-1].response
    for response in (whole, completed):
        assert response.instructions == "Answer briefly."
        assert (response.temperature, response.top_p) == (0.3, 0.9)
        assert response.max_output_tokens == 64
        assert response.metadata == {"ticket": "T-1"}
        assert [tool.name for tool in response.tools] == ["get_weather"]
        assert (response.tool_choice, response.parallel_tool_calls) == ("none", False)
    bare = gateway.client().responses.create(model="gpt-4o-mini", input="hi")
    assert (bare.instructions, bare.temperature, bare.tools) == (None, None, [])


def test_streamed_events_carry_the_text_and_end_with_the_usage(gateway: RunningGateway) -> None:
    events = _stream(gateway, model="gpt-4o-mini", input="hello there")
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "[primary] echo: hello there"
    completed = events[-1].response
    assert completed.output_text == deltas and completed.usage is not None
    assert (completed.usage.input_tokens, completed.usage.output_tokens) == (2, 4)

    with gateway.client().responses.stream(model="gpt-4o-mini", input="hello again") as stream:
        final = stream.get_final_response()
    assert final.output_text == "[primary] echo: hello again"
    rows = gateway.events(2)
    assert [(r["route"], r["stream"], r["completion_tokens"]) for r in rows] == [
        ("/v1/responses", True, 4),
        ("/v1/responses", True, 4),
    ]


def test_a_stream_cut_midway_ends_with_response_failed(gateway: RunningGateway) -> None:
    gateway.upstreams["primary"].faults.cut_stream_after = 2
    events = list(
        gateway.client().responses.create(model="gpt-4o-mini", input="hello there", stream=True)
    )
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.error is not None
    # What was sent before the cut; the output guard may still have held some of it back.
    assert "[primary] echo: hello there".startswith(failed.response.output_text)
    [event] = gateway.events()
    assert (event["status"], event["error_type"]) == ("error", "upstream_stream_error")


def test_function_tool_round_trip(claude: RunningGateway) -> None:
    client = claude.client()
    question = {"role": "user", "content": "Weather in Oslo?"}
    response = client.responses.create(
        model="claude", input=[question], tools=[WEATHER_TOOL], tool_choice="required"
    )
    sent = claude.upstreams["primary"].requests[-1]
    assert sent["tools"][0]["name"] == "get_weather" and sent["tool_choice"] == {"type": "any"}
    [call] = response.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "toolu_1",
        "get_weather",
        {"city": "Oslo"},
    )

    answer = client.responses.create(
        model="claude",
        input=[
            question,
            *[item.model_dump(exclude_none=True) for item in response.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
        ],
    )
    sent = claude.upstreams["primary"].requests[-1]
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "Sunny",
    }
    assert answer.output_text == "[primary] Sunny"


def test_streamed_function_call(claude: RunningGateway) -> None:
    with claude.client().responses.stream(
        model="claude", input="Weather in Oslo?", tools=[WEATHER_TOOL]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Oslo"}
    [call] = final.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    assert final.usage is not None and final.usage.output_tokens == 5


class City(BaseModel):
    city: str


def test_structured_output_with_parse(claude: RunningGateway) -> None:
    parsed = claude.client().responses.parse(
        model="claude", input="Where is it sunny?", text_format=City
    )
    sent = claude.upstreams["primary"].requests[-1]
    [tool] = sent["tools"]  # the Anthropic provider carries response_format as a forced tool
    assert tool["input_schema"]["properties"] == {"city": {"title": "City", "type": "string"}}
    assert parsed.output_parsed == City(city="Oslo")


def test_a_seamline_prompt_by_alias(
    gateway: RunningGateway, registry: Registry, alice: Actor, bob: Actor
) -> None:
    registry.push(alice, [prompt_draft(text="Hello {{ who }}!", model="gpt-4o-mini")])
    registry.approve(bob, "prompt", "greeter", 1)
    registry.move_alias(alice, "prompt", "greeter", "production", 1, override=True, reason="t")
    response = gateway.client().responses.create(
        model="prompt:greeter@production",
        input="and you?",
        extra_body={"seamline": {"variables": {"who": "Ada"}}},
    )
    assert response.output_text == "[primary] echo: and you?"
    sent = gateway.upstreams["primary"].requests[-1]
    assert [m["content"] for m in sent["messages"]] == [
        "You greet people.",
        "Hello Ada!",
        "and you?",
    ]
    [event] = gateway.events()
    assert (event["route"], event["prompt_name"], event["prompt_version"]) == (
        "/v1/responses",
        "greeter",
        1,
    )


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"background": True}, "background"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ],
)
def test_what_cannot_be_carried_is_refused_by_name(
    gateway: RunningGateway, options: dict[str, Any], param: str
) -> None:
    body = {"model": "gpt-4o-mini", "input": "hi", **options}
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.client().responses.create(**body)
    assert refused.value.param == param
    assert refused.value.body["param"] == param  # type: ignore[index]
    if param == "previous_response_id":
        assert "'input'" in refused.value.message
    assert gateway.upstreams["primary"].requests == []


def test_a_bad_key_is_a_401_in_openai_shape(gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        gateway.client(key="sk-wrong").responses.create(model="gpt-4o-mini", input="hi")
    assert refused.value.code == "invalid_api_key"
    assert refused.value.body["type"] == "authentication_error"  # type: ignore[index]


def test_a_cut_off_answer_is_incomplete() -> None:
    completion = {
        "id": "chatcmpl-9",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"content": "Once"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    response = Response.model_validate(chat_to_response(completion))
    assert (response.status, response.output_text) == ("incomplete", "Once")
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
