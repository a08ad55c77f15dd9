"""OpenAI's chat completions: the request path's own format, so the identity; and Azure
OpenAI's spelling of it, which names the deployment in the path."""

from __future__ import annotations

from typing import Any

import orjson

from seamline.core.errors import SeamlineError
from seamline.gateway.server.http import Scope, bearer_token, sse_event


class ChatCompletions:
    route = "/v1/chat/completions"

    def credentials(self, scope: Scope) -> str | None:
        return bearer_token(scope)

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def answer(self, completion: dict[str, Any], raw: bytes | None) -> bytes:
        return raw or orjson.dumps(completion)

    def writer(self, model: str, include_usage: bool) -> ChatStream:
        return ChatStream(include_usage)

    def error_body(self, error: SeamlineError) -> dict[str, Any]:
        return error.to_dict()


class AzureDeploymentChat(ChatCompletions):
    """``POST /openai/deployments/{name}/chat/completions?api-version=...`` with an
    ``api-key`` header, as Azure OpenAI clients call it: the path names the model (Azure
    ignores the body's ``model``, and raw clients leave it out)."""

    route = "/openai/deployments/chat/completions"

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": self.deployment}


class ChatStream:
    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def chunk(self, chunk: dict[str, Any], raw: bytes | None) -> bytes:
        # The usage chunk (no choices) is always asked of the upstream, for costing; it is
        # passed on only to clients that asked for it.
        if chunk.get("choices") or self.include_usage:
            return raw or sse_event(chunk)
        return b""

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"

    def fail(self, error: SeamlineError) -> bytes:
        return sse_event(error.to_dict())
