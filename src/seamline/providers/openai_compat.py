"""Anything that speaks OpenAI's HTTP API: OpenAI, Azure OpenAI, vLLM, TGI, SGLang, Ollama,
llama.cpp's server. Bytes pass through; only usage and finish reasons are read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from seamline.providers.base import ChatResult, Deployment, StreamChunk, UpstreamError, Usage
from seamline.providers.http_upstream import HttpUpstream, parse_json


class OpenAICompatibleProvider(HttpUpstream):
    name = "openai"

    @staticmethod
    def _headers(deployment: Deployment) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **deployment.extra_headers}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return headers

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        return await self._call(deployment, "/chat/completions", body)

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        return await self._call(deployment, "/embeddings", body)

    async def _call(self, deployment: Deployment, path: str, body: dict[str, Any]) -> ChatResult:
        parsed, raw = await self.post_json(
            deployment, f"{deployment.base_url}{path}", body, self._headers(deployment)
        )
        return ChatResult(parsed, Usage.from_openai(parsed.get("usage")), raw)

    async def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[StreamChunk]:
        events = self.post_sse(
            deployment, f"{deployment.base_url}/chat/completions", body, self._headers(deployment)
        )
        async with aclosing(events):  # closes the upstream response on every way out
            async for _, payload in events:
                if payload == b"[DONE]":
                    return
                data = parse_json(deployment, payload)
                if "error" in data and "choices" not in data:
                    raise UpstreamError(f"{deployment.id}: {data['error']}", status=502)
                yield StreamChunk(data, b"data: " + payload + b"\n\n")
        raise UpstreamError(f"{deployment.id}: stream ended before [DONE]", status=502)
