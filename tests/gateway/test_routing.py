from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from seamline.core.settings import ModelConfig
from tests.gateway.conftest import PRICE, RunningGateway
from tests.stub_upstream import StubUpstream

HELLO = [{"role": "user", "content": "hi"}]


def test_retries_a_429_honouring_retry_after(gateway: RunningGateway) -> None:
    faults = gateway.upstreams["primary"].faults
    faults.fail_next, faults.fail_status, faults.retry_after = 1, 429, "0"
    reply = gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content.startswith("[primary]")
    assert gateway.events()[0]["attempts"] == 2


def test_falls_back_to_the_next_model_when_the_first_keeps_failing(
    gateway: RunningGateway,
) -> None:
    gateway.upstreams["primary"].faults.fail_next = 100
    reply = gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content.startswith("[backup]")
    assert gateway.upstreams["backup"].requests[-1]["model"] == "backup-1"
    [event] = gateway.events()
    assert (event["model_requested"], event["model_used"], event["attempts"]) == (
        "gpt-4o-mini",
        "backup-model",
        4,
    )


def test_circuit_breaker_opens_then_probes(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    gateway = start_gateway(breaker_failures=3, breaker_cooldown_s=0.3, max_attempts=1)
    primary = upstreams["primary"]
    primary.faults.fail_next = 100
    client = gateway.client()
    for _ in range(3):  # each fails on primary, then succeeds on the fallback
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    hits = len(primary.requests)
    for _ in range(5):  # breaker open: primary is not even tried
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert len(primary.requests) == hits
    assert (
        'seamline_circuit_state{deployment="primary"} 2.0'
        in httpx.get(f"{gateway.url}/metrics").text
    )
    import time

    time.sleep(0.35)
    primary.faults.fail_next = 0
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content.startswith("[primary]")  # the half-open probe
    assert (
        'seamline_circuit_state{deployment="primary"} 0.0'
        in httpx.get(f"{gateway.url}/metrics").text
    )


def test_replicas_share_the_load(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    models = [
        ModelConfig(name="m", base_url=upstreams[n].base_url, prices=PRICE, deployment=n)
        for n in ("primary", "secondary")
    ]
    gateway = start_gateway(models)
    client = gateway.client()
    for _ in range(40):
        client.chat.completions.create(model="m", messages=HELLO)
    assert len(upstreams["primary"].requests) > 5 and len(upstreams["secondary"].requests) > 5


def test_upstream_failure_after_retries_is_a_502_with_its_event(gateway: RunningGateway) -> None:
    gateway.upstreams["primary"].faults.fail_next = 100
    gateway.upstreams["backup"].faults.fail_next = 100
    with pytest.raises(openai.InternalServerError) as failed:
        gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "upstream_error"  # type: ignore[index]
    [event] = gateway.events()
    assert (event["status"], event["http_status"], event["attempts"]) == ("error", 502, 6)


def test_upstream_timeout_is_a_504(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    models = [
        ModelConfig(
            name="slow",
            base_url=upstreams["primary"].base_url,
            read_timeout_s=0.2,
            total_timeout_s=0.3,
        )
    ]
    gateway = start_gateway(models, max_attempts=1)
    upstreams["primary"].faults.latency_s = 1.0
    with pytest.raises(openai.APIStatusError) as failed:
        gateway.client().chat.completions.create(model="slow", messages=HELLO)
    assert failed.value.status_code == 504
    assert gateway.events()[0]["error_type"] == "upstream_timeout"


def test_upstream_rejection_of_the_request_is_the_callers_400(gateway: RunningGateway) -> None:
    faults = gateway.upstreams["primary"].faults
    faults.fail_next, faults.fail_status = 1, 400
    with pytest.raises(openai.BadRequestError):
        gateway.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert len(gateway.upstreams["backup"].requests) == 0  # not retried, not a fallback case


def test_stream_cut_midway_ends_with_an_error_event(gateway: RunningGateway) -> None:
    gateway.upstreams["primary"].faults.cut_stream_after = 2
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": "gpt-4o-mini", "messages": HELLO, "stream": True},
    ) as r:
        body = r.read().decode()
    assert r.status_code == 200
    assert body.count("chat.completion.chunk") == 2
    assert '"code":"upstream_stream_error"' in body
    [event] = gateway.events()
    assert (event["status"], event["error_type"]) == ("error", "upstream_stream_error")
    assert event["response_content"]["content"] == "[primary] echo: "


def test_client_disconnect_mid_stream_cancels_the_upstream_call(
    gateway: RunningGateway,
) -> None:
    primary = gateway.upstreams["primary"]
    primary.faults.latency_s = 0.2  # between chunks
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": "gpt-4o-mini", "messages": HELLO, "stream": True},
    ) as r:
        next(r.iter_raw())
    [event] = gateway.events()
    assert (event["status"], event["http_status"], event["error_type"]) == (
        "error",
        499,
        "client_disconnected",
    )
    import time

    deadline = time.monotonic() + 5
    while primary.cancelled_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert primary.cancelled_streams == 1


def test_a_callers_bad_requests_do_not_open_the_breaker(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    gateway = start_gateway(breaker_failures=3)
    faults = upstreams["primary"].faults
    faults.fail_next, faults.fail_status = 5, 400
    client = gateway.client()
    for _ in range(5):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content.startswith("[primary]")  # type: ignore[union-attr]


def test_a_probing_replica_does_not_turn_calls_away_from_healthy_ones() -> None:
    from seamline.core.settings import GatewayConfig
    from seamline.gateway.catalog import ModelCatalog
    from seamline.gateway.stages.router import Router

    catalog = ModelCatalog(
        [
            ModelConfig(name="m", base_url="http://a", deployment="a"),
            ModelConfig(name="m", base_url="http://b", deployment="b"),
        ]
    )
    router = Router(catalog, GatewayConfig(breaker_failures=1, breaker_cooldown_s=0.01))
    entry = catalog.get("m")
    a = entry.deployments[0]
    router.breaker(a).failure()
    import time

    time.sleep(0.02)  # a is half-open now
    router.breaker(a).start()  # and its one probe is out
    assert all(router.choose(entry, set()) is entry.deployments[1] for _ in range(200))


def test_an_upstream_429_sets_the_replica_aside_without_opening_its_breaker(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> None:
    models = [
        ModelConfig(name="m", base_url=upstreams[n].base_url, prices=PRICE, deployment=n)
        for n in ("primary", "secondary")
    ]
    gateway = start_gateway(models, breaker_failures=1)
    faults = upstreams["primary"].faults
    faults.fail_next, faults.fail_status, faults.retry_after = 100, 429, "30"
    client = gateway.client()
    for _ in range(12):
        reply = client.chat.completions.create(model="m", messages=HELLO)
        assert reply.choices[0].message.content.startswith("[secondary]")  # type: ignore[union-attr]
    # Tried at most once, then left alone for its Retry-After; never counted as unwell.
    assert len(upstreams["primary"].requests) <= 1
    assert gateway.app.gateway.router.breakers["primary"].state == "closed"


def test_every_replica_rate_limited_is_a_429_with_retry_after(gateway: RunningGateway) -> None:
    for name in ("primary", "backup"):
        faults = gateway.upstreams[name].faults
        faults.fail_next, faults.fail_status, faults.retry_after = 100, 429, "7"
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": "gpt-4o-mini", "messages": HELLO},
    )
    assert response.status_code == 429, response.text
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["retry-after"]) <= 7
    # The next call does not even reach the upstreams while their Retry-After lasts.
    hits = sum(len(gateway.upstreams[n].requests) for n in ("primary", "backup"))
    again = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": "gpt-4o-mini", "messages": HELLO},
    )
    assert again.status_code == 429
    assert sum(len(gateway.upstreams[n].requests) for n in ("primary", "backup")) == hits
