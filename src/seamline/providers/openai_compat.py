"""Anything that speaks OpenAI's HTTP API: OpenAI, Azure OpenAI, vLLM, TGI, SGLang, Ollama,
llama.cpp's server.

The upstream client is aiohttp, chosen by measurement: httpx's AsyncClient spends 2.3-3.2 ms
of CPU per request at concurrency 16 on this kind of machine, aiohttp's ClientSession about
0.2 ms (FACTS.md), and the gateway's whole budget is 1.5 ms.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from seamline.providers.base import ChatResult, Deployment, StreamChunk, UpstreamError, Usage

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_CONNECTIONS = 1000


class OpenAICompatibleProvider:
    name = "openai"

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ttl_dns_cache=300),
                json_serialize=lambda value: orjson.dumps(value).decode(),
                auto_decompress=True,
            )
        return self._session

    def _headers(self, deployment: Deployment) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **deployment.extra_headers}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return headers

    def _timeout(self, deployment: Deployment, *, stream: bool) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None if stream else deployment.total_timeout_s,
            sock_connect=deployment.connect_timeout_s,
            sock_read=deployment.stream_idle_timeout_s if stream else deployment.read_timeout_s,
        )

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        return await self._post(deployment, "/chat/completions", body)

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        return await self._post(deployment, "/embeddings", body)

    async def _post(self, deployment: Deployment, path: str, body: dict[str, Any]) -> ChatResult:
        url = f"{deployment.base_url}{path}"
        try:
            async with self._client().post(
                url,
                data=orjson.dumps(body),
                headers=self._headers(deployment),
                timeout=self._timeout(deployment, stream=False),
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise _error_from(response.status, raw, response.headers)
        except TimeoutError as exc:
            raise UpstreamError(
                f"{deployment.id}: timed out", retryable=True, timeout=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{deployment.id}: {exc.__class__.__name__}: {exc}", retryable=True
            ) from exc
        try:
            parsed: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{deployment.id}: answered invalid JSON", status=502, retryable=True
            ) from exc
        return ChatResult(parsed, Usage.from_openai(parsed.get("usage")), raw)

    async def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[StreamChunk]:
        url = f"{deployment.base_url}/chat/completions"
        try:
            async with self._client().post(
                url,
                data=orjson.dumps(body),
                headers=self._headers(deployment),
                timeout=self._timeout(deployment, stream=True),
            ) as response:
                if response.status != 200:
                    raise _error_from(response.status, await response.read(), response.headers)
                done = False
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    try:
                        data = orjson.loads(payload)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamError(
                            f"{deployment.id}: invalid stream chunk", status=502
                        ) from exc
                    if "error" in data and "choices" not in data:
                        raise UpstreamError(f"{deployment.id}: {data['error']}", status=502)
                    yield StreamChunk(data, b"data: " + payload + b"\n\n")
                if not done:
                    raise UpstreamError(f"{deployment.id}: stream ended before [DONE]", status=502)
        except TimeoutError as exc:
            raise UpstreamError(
                f"{deployment.id}: stream timed out", retryable=True, timeout=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{deployment.id}: {exc.__class__.__name__}: {exc}", retryable=True
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _error_from(status: int, raw: bytes, headers: Any) -> UpstreamError:
    try:
        body = orjson.loads(raw)
        message = body.get("error", {}).get("message") or raw[:300].decode(errors="replace")
    except (orjson.JSONDecodeError, AttributeError):
        body, message = None, raw[:300].decode(errors="replace")
    retry_after = _seconds(headers.get("Retry-After"))
    return UpstreamError(
        f"upstream answered {status}: {message}",
        status=status,
        retryable=status in RETRYABLE_STATUS,
        retry_after=retry_after,
        body=body if isinstance(body, dict) else None,
    )


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: rare from model servers; fall back to our backoff
