"""Every refusal is OpenAI-shaped, has the right status, and still leaves its event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from tests.gateway.conftest import RunningGateway

HELLO = [{"role": "user", "content": "hi"}]


def _post(
    gateway: RunningGateway, body: Any, key: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gateway.key}"} if key != "" else {}
    if isinstance(body, bytes):
        return httpx.post(
            f"{gateway.url}/v1/chat/completions",
            content=body,
            headers={**headers, "content-type": "application/json"},
            **kwargs,
        )
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, **kwargs)


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param"} and error["code"] == code
    return error


CASES: list[tuple[Any, int, str]] = [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    ({"messages": HELLO}, 400, "missing_model"),
    ({"model": 7, "messages": HELLO}, 400, "invalid_type"),
    ({"model": "gpt-4o-mini"}, 400, "missing_messages"),
    ({"model": "gpt-4o-mini", "messages": "hi"}, 400, "invalid_type"),
    ({"model": "gpt-4o-mini", "messages": [{"content": "no role"}]}, 400, "invalid_message"),
    ({"model": "gpt-4o-mini", "messages": HELLO, "stream": "yes"}, 400, "invalid_type"),
    ({"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": True}, 400, "invalid_type"),
    (
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]},
        400,
        "invalid_message",
    ),
    (
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ["hi"]}]},
        400,
        "invalid_message",
    ),
    (  # a text part whose text is not a string (token counts and routing read it as one)
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
        },
        400,
        "invalid_message",
    ),
    ({"model": "gpt-4o-mini", "messages": HELLO, "tools": ["lookup"]}, 400, "invalid_type"),
    ({"model": "no-such-model", "messages": HELLO}, 404, "model_not_found"),
    ({"model": "prompt:", "messages": HELLO}, 400, "invalid_prompt_reference"),
    ({"model": "prompt:ghost@production"}, 404, "artefact_not_found"),
    ({"model": "prompt:ghost@" + "9" * 5000}, 400, "invalid_version"),
    *[
        ({"model": "gpt-4o-mini", "messages": HELLO, **extra}, 400, code)
        for extra, code in [
            ({"max_tokens": -5}, "integer_below_min_value"),
            ({"max_tokens": 2**63 - 1}, "integer_above_max_value"),
            ({"max_completion_tokens": 0}, "integer_below_min_value"),
            ({"n": 1000}, "integer_above_max_value"),
            ({"temperature": 3}, "decimal_above_max_value"),
            ({"top_p": -0.1}, "decimal_below_min_value"),
            ({"presence_penalty": 2.5}, "decimal_above_max_value"),
            ({"top_logprobs": 21}, "integer_above_max_value"),
            ({"logprobs": "yes"}, "invalid_type"),
            ({"stop": ["a", "b", "c", "d", "e"]}, "array_above_max_length"),
            ({"messages": [{"role": "wizard", "content": "hi"}]}, "invalid_value"),
            ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "invalid_value"),
            ({"tools": [{"type": "browser", "function": {"name": "f"}}]}, "invalid_value"),
            (
                {"tools": [{"type": "function", "function": {"name": "f", "parameters": 5}}]},
                "invalid_input",
            ),
            (
                {
                    "tools": [
                        {
                            "type": "function",
                            "function": {"name": "f", "parameters": {"type": "nonsense"}},
                        }
                    ]
                },
                "invalid_schema",
            ),
            ({"response_format": {"type": "yaml"}}, "invalid_value"),
            (
                {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"required": "all"}},
                    }
                },
                "invalid_schema",
            ),
        ]
    ],
]


@pytest.mark.parametrize(("body", "status", "code"), CASES)
def test_bad_requests(gateway: RunningGateway, body: Any, status: int, code: str) -> None:
    _error(_post(gateway, body), status, code)
    [event] = gateway.events()
    assert (event["status"], event["http_status"], event["error_type"]) == ("error", status, code)
    assert gateway.upstreams["primary"].requests == []  # nothing OpenAI refuses goes upstream


def test_an_answered_call_with_an_overlong_user_and_model_is_stored(
    gateway: RunningGateway,
) -> None:
    # PostgreSQL refused such rows, and answered, billed calls went missing from the events.
    reply = gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, user="u" * 300, metadata={"use_case": "c" * 300}
    )
    assert reply.choices
    _error(_post(gateway, {"model": "m" * 300, "messages": HELLO}), 404, "model_not_found")
    answered, refused = gateway.events(2)
    assert answered["status"] == "ok" and answered["user_id"] == "u" * 200
    assert answered["use_case"] == "c" * 200
    assert refused["model_requested"] == "m" * 200


def test_oversized_body_is_a_413(start_gateway: Callable[..., RunningGateway]) -> None:
    gateway = start_gateway(max_body_bytes=1000)
    _error(
        _post(
            gateway, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 2000}]}
        ),
        413,
        "payload_too_large",
    )
    assert gateway.events()[0]["http_status"] == 413


def test_key_problems_are_401_or_403_and_leave_events(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    body = {"model": "gpt-4o-mini", "messages": HELLO}
    _error(_post(gateway, body, key=""), 401, "missing_api_key")
    _error(_post(gateway, body, key="sk-seam-wrong"), 401, "invalid_api_key")
    reader, _ = registry.create_key(
        alice, owner="dash", scopes=frozenset({Scope.READ}), name="dash"
    )
    _error(_post(gateway, body, key=reader), 403, "missing_scope")
    assert _post(gateway, body).status_code == 200
    key_id = gateway.events(4)[-1]["api_key_id"]
    registry.revoke_key(alice, key_id)
    _error(_post(gateway, body), 401, "revoked_api_key")  # the very next request
    statuses = [e["http_status"] for e in gateway.events(5)]
    assert statuses == [401, 401, 403, 200, 401]


def test_wrong_method_and_unknown_path(gateway: RunningGateway) -> None:
    wrong_method = httpx.get(f"{gateway.url}/v1/chat/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert httpx.get(f"{gateway.url}/v1/nothing").json()["error"]["code"] == "not_found"


def test_rate_limits_answer_429_with_headers(
    start_gateway: Callable[..., RunningGateway], fresh_window: None
) -> None:
    gateway = start_gateway(key_limits={"requests_per_minute": 3})
    client = gateway.client()
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert raw.headers["x-ratelimit-limit-requests"] == "3"
    assert raw.headers["x-ratelimit-remaining-requests"] == "2"
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    refused = limited.value.response.headers
    assert int(refused["retry-after"]) >= 1
    assert (refused["x-ratelimit-limit-requests"], refused["x-ratelimit-remaining-requests"]) == (
        "3",
        "0",
    )
    assert refused["x-ratelimit-reset-requests"].endswith("s")
    assert limited.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert [e["status"] for e in gateway.events(4)] == ["ok", "ok", "ok", "blocked"]


def test_token_limits_refuse_calls_once_the_window_is_spent(
    start_gateway: Callable[..., RunningGateway], fresh_window: None
) -> None:
    gateway = start_gateway(project_limits={"tokens_per_minute": 10})
    client = gateway.client()
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # 1 + 3 tokens
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # window now at 12
    with pytest.raises(openai.RateLimitError, match="tokens per minute"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_a_key_limited_to_some_models_cannot_call_others(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    key, _ = registry.create_key(
        alice,
        owner="svc",
        scopes=frozenset({Scope.INVOKE}),
        name="narrow",
        models=["gpt-4o-*", "embed-small"],
    )
    client = gateway.client(key)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="backup-model", messages=HELLO)
    assert refused.value.body["code"] == "model_not_allowed"  # type: ignore[index]
    assert {m.id for m in client.models.list()} == {"gpt-4o-mini", "embed-small"}
    assert client.models.retrieve("embed-small").id == "embed-small"
    with pytest.raises(openai.NotFoundError):  # as if it did not exist
        client.models.retrieve("backup-model")
    assert gateway.events(2)[-1]["http_status"] == 403


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"input": [[1, 2], []]}, "input"),
        ({"input": [-1, 2]}, "input"),
        ({"input": [True]}, "input"),
        ({"input": ["a"] * 2049}, "input"),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "dimensions": "8"}, "dimensions"),
    ],
)
def test_embeddings_refuse_what_openai_refuses(
    gateway: RunningGateway, body: dict[str, object], param: str
) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/embeddings",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": "embed-small", **body},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert not gateway.upstreams["primary"].requests


def test_embeddings_of_token_ids_reach_the_upstream_as_ids(gateway: RunningGateway) -> None:
    client = gateway.client()
    client.embeddings.create(model="embed-small", input=[[9906, 1917], [15339]])
    client.embeddings.create(model="embed-small", input=[9906, 1917], dimensions=2)
    sent = [r["input"] for r in gateway.upstreams["primary"].requests]
    assert sent == [[[9906, 1917], [15339]], [9906, 1917]]
    assert gateway.upstreams["primary"].requests[-1]["dimensions"] == 2
