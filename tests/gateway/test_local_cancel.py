"""An abandoned call never keeps the embedded model busy: a client that goes away stops its
generation, streamed or not; the model's queue is short and says when to come back; closing
the provider stops what runs. Against the real SmolLM2."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest

from seamline.providers.base import Deployment, UpstreamError
from seamline.providers.local import MAX_WAITING, LocalProvider
from tests.gateway.conftest import RunningGateway

pytestmark = pytest.mark.skipif(
    "local-smollm2" not in LocalProvider.available() and not os.environ.get("CI"),
    reason="the embedded models need 'pip install -e .[local]'",
)
MODEL = "local-smollm2"
# At temperature 0 SmolLM2-135M counts on for thousands of tokens: a call only a stop ends.
LONG = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Write the numbers from 1 to 1000, one per line."}],
    "max_tokens": 8000,
    "temperature": 0,
}
SHORT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
DEPLOYMENT = Deployment(
    id="local:local-smollm2", model=MODEL, provider="local", upstream_model=MODEL
)


@pytest.fixture
def local_gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return start_gateway([], embedded_models=True)


def _provider(gateway: RunningGateway) -> LocalProvider:
    provider = gateway.app.gateway.providers["local"]
    assert isinstance(provider, LocalProvider)
    return provider


def _eventually(check: Callable[[], bool], within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def _calls_in_flight(gateway: RunningGateway, count: int) -> Iterator[list[socket.socket]]:
    """``count`` long non-streamed calls, sent on raw sockets that are never read: closing
    a socket is a client that went away."""
    payload = json.dumps(LONG).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {gateway.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    sockets = [socket.create_connection(("127.0.0.1", gateway.server.port)) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(head + payload)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_a_client_that_goes_away_stops_its_non_streamed_call(
    local_gateway: RunningGateway,
) -> None:
    provider = _provider(local_gateway)
    with _calls_in_flight(local_gateway, 1):
        assert _eventually(lambda: provider.queued(MODEL) == 1)
    [event] = local_gateway.events()
    assert (event["status"], event["http_status"], event["error_type"]) == (
        "error",
        499,
        "client_disconnected",
    )
    assert _eventually(lambda: provider.queued(MODEL) == 0)
    reply = local_gateway.client(timeout=60).chat.completions.create(**SHORT)
    assert reply.choices[0].message.content


def test_a_full_local_queue_answers_429_with_retry_after_and_keeps_the_breaker_closed(
    local_gateway: RunningGateway,
) -> None:
    provider = _provider(local_gateway)
    client = local_gateway.client(timeout=60)
    with _calls_in_flight(local_gateway, 1 + MAX_WAITING):
        assert _eventually(lambda: provider.queued(MODEL) == 1 + MAX_WAITING)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(**SHORT)
    assert refused.value.response.headers["retry-after"] == "1"
    breaker = local_gateway.app.gateway.router.breaker(DEPLOYMENT)
    assert breaker.state == "closed" and breaker.failures == 0
    # The abandoned calls leave the queue; once the Retry-After is over the model answers.
    assert _eventually(lambda: provider.queued(MODEL) == 0)
    reply = client.with_options(max_retries=3).chat.completions.create(**SHORT)
    assert reply.choices[0].message.content


def _run(work: Callable[[LocalProvider], Any]) -> Any:
    async def main() -> Any:
        provider = LocalProvider()
        try:
            return await work(provider)
        finally:
            await provider.close()

    return asyncio.run(main())


def test_cancelling_a_call_frees_the_model_for_the_next() -> None:
    async def work(provider: LocalProvider) -> str:
        running = asyncio.create_task(provider.chat(DEPLOYMENT, dict(LONG)))
        waiting = asyncio.create_task(provider.chat(DEPLOYMENT, dict(LONG)))
        await asyncio.sleep(0.5)  # the first one loads the model and starts
        assert provider.queued(MODEL) == 2
        running.cancel()
        waiting.cancel()
        await asyncio.gather(running, waiting, return_exceptions=True)
        reply = await asyncio.wait_for(provider.chat(DEPLOYMENT, dict(SHORT)), 60)
        return str(reply.body["choices"][0]["message"]["content"])

    assert _run(work)


def test_closing_the_provider_stops_running_and_waiting_generations() -> None:
    async def work(provider: LocalProvider) -> list[Any]:
        stream = provider.chat_stream(DEPLOYMENT, {**LONG, "stream": True})
        await anext(stream)  # generating
        waiting = asyncio.create_task(provider.chat(DEPLOYMENT, dict(LONG)))
        await asyncio.sleep(0)

        async def drain() -> None:
            async for _ in stream:
                pass

        await provider.close()
        return await asyncio.wait_for(asyncio.gather(drain(), waiting, return_exceptions=True), 30)

    outcomes = _run(work)
    assert all(isinstance(o, UpstreamError) and o.status == 503 for o in outcomes), outcomes
    with pytest.raises(UpstreamError):
        _run(lambda provider: _closed_call(provider))


async def _closed_call(provider: LocalProvider) -> Any:
    await provider.close()
    return await provider.chat(DEPLOYMENT, dict(SHORT))
