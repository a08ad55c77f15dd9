from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.gateway.conftest import RunningGateway

HELLO = [{"role": "user", "content": "hello there"}]


def test_non_streamed_call_through_the_openai_sdk(gateway: RunningGateway) -> None:
    reply = gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content == "[primary] echo: hello there"
    assert gateway.upstreams["primary"].requests[-1]["model"] == "gpt-4o-mini"
    [event] = gateway.events()
    assert (event["status"], event["http_status"], event["model_used"], event["stream"]) == (
        "ok",
        200,
        "gpt-4o-mini",
        False,
    )
    assert (event["prompt_tokens"], event["completion_tokens"]) == (2, 4)
    assert event["cost_usd"] == pytest.approx((2 * 1.0 + 4 * 2.0) / 1e6)
    assert event["project"] == "acme" and event["api_key_id"].startswith("key_")
    assert event["request_content"] == HELLO
    assert event["response_content"]["content"] == "[primary] echo: hello there"


def test_streamed_call_is_costed_exactly_like_the_rest(gateway: RunningGateway) -> None:
    stream = gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[primary] echo: hello there"
    assert all(c.usage is None for c in chunks)  # not asked for: not passed on
    [event] = gateway.events()
    assert event["stream"] and event["ttft_ms"] is not None
    assert (event["prompt_tokens"], event["completion_tokens"]) == (2, 4)
    assert event["cost_usd"] > 0 and not event["tokens_estimated"]
    assert gateway.upstreams["primary"].requests[-1]["stream_options"] == {"include_usage": True}


def test_stream_usage_is_passed_on_when_asked(gateway: RunningGateway) -> None:
    chunks = list(
        gateway.client().chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_async_client_streams_too(gateway: RunningGateway) -> None:
    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return "".join(parts)

    assert asyncio.run(run()) == "[primary] echo: hello there"


def test_missing_usage_is_counted_and_marked(gateway: RunningGateway) -> None:
    gateway.upstreams["primary"].faults.omit_usage = True
    gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    [event] = gateway.events()
    assert event["prompt_tokens"] > 0 and event["completion_tokens"] > 0
    assert not event["tokens_estimated"]  # gpt-4o-mini has an exact offline tokenizer


def test_tools_and_response_format_pass_through(gateway: RunningGateway) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        tools=[tool],  # type: ignore[list-item]
        response_format={"type": "json_object"},
        metadata={"use_case": "support"},
    )
    sent = gateway.upstreams["primary"].requests[-1]
    assert sent["tools"] == [tool] and sent["response_format"] == {"type": "json_object"}
    assert "metadata" not in sent
    assert gateway.events()[0]["use_case"] == "support"


def test_embeddings(gateway: RunningGateway) -> None:
    result = gateway.client().embeddings.create(model="embed-small", input=["a b", "c"])
    assert len(result.data) == 2
    [event] = gateway.events()
    assert (event["route"], event["prompt_tokens"], event["status"]) == ("/v1/embeddings", 3, "ok")


def test_models_lists_the_catalog(gateway: RunningGateway) -> None:
    names = {m.id for m in gateway.client().models.list()}
    assert names == {"gpt-4o-mini", "backup-model", "embed-small"}


def test_models_retrieve_one_model(gateway: RunningGateway) -> None:
    client = gateway.client()
    model = client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object) == ("gpt-4o-mini", "model")
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_every_answer_carries_the_request_id(gateway: RunningGateway) -> None:
    client = gateway.client()
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=-1)
    embedded = client.embeddings.with_raw_response.create(model="embed-small", input="a")
    stored = [e["request_id"] for e in gateway.events(3)]
    assert [raw.request_id, refused.value.request_id, embedded.request_id] == stored


def test_legacy_completions_say_which_route_to_use(gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError, match="/v1/chat/completions"):
        gateway.client().completions.create(model="gpt-4o-mini", prompt="hi")


def test_open_metrics_count_calls_without_naming_projects(gateway: RunningGateway) -> None:
    gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    text = httpx.get(f"{gateway.url}/metrics").text
    assert (
        'seamline_requests_total{model="gpt-4o-mini",project="",provider="openai",'
        'route="/v1/chat/completions",status="ok"} 1.0' in text
    )
    assert "seamline_cost_usd_total" in text and "seamline_upstream_latency_seconds" in text
    assert "acme" not in text


def test_metrics_behind_a_token_name_each_project(
    start_gateway: Callable[..., RunningGateway],
) -> None:
    gateway = start_gateway(metrics_token="scrape-me")
    gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert httpx.get(f"{gateway.url}/metrics").status_code == 401
    text = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": "Bearer scrape-me"}).text
    assert 'seamline_cost_usd_total{model="gpt-4o-mini",project="acme"}' in text


@pytest.mark.parametrize(
    ("mode", "request_stored", "response_stored"),
    [
        (
            "redacted",
            [{"role": "user", "content": "hi from [EMAIL]"}],
            {"role": "assistant", "content": "[primary] echo: hi from [EMAIL]"},
        ),
        ("none", None, None),
    ],
)
def test_content_logging_follows_the_project_policy(
    gateway: RunningGateway, mode: str, request_stored: object, response_stored: object
) -> None:
    from seamline.registry.workspace import local_actor

    registry = gateway.registry
    registry.set_content_logging(local_actor(registry.db, "acme", "admin"), mode)
    sent = [{"role": "user", "content": "hi from jane.doe@example.org"}]
    reply = gateway.client().chat.completions.create(model="gpt-4o-mini", messages=sent)
    assert reply.choices[0].message.content.endswith("jane.doe@example.org")  # the caller's
    [event] = gateway.events()
    assert event["request_content"] == request_stored
    assert event["response_content"] == response_stored


def test_azure_openai_clients_call_deployments_by_path(gateway: RunningGateway) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=gateway.url, api_key=gateway.key, api_version="2024-10-21", max_retries=0
    )
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content == "[primary] echo: hello there"
    raw = httpx.post(  # a raw REST client: the deployment in the path, no model in the body
        f"{gateway.url}/openai/deployments/backup-model/chat/completions?api-version=2024-10-21",
        headers={"api-key": gateway.key},
        json={"messages": HELLO},
    )
    assert raw.json()["choices"][0]["message"]["content"].startswith("[backup]")
    events = gateway.events(2)
    assert [e["model_used"] for e in events] == ["gpt-4o-mini", "backup-model"]
    assert {e["route"] for e in events} == {"/openai/deployments/chat/completions"}
