"""The provider protocol: an OpenAI-format request in, an OpenAI-format answer out.

OpenAI's chat format is the lingua franca: clients speak it and most servers (vLLM, TGI,
SGLang, Ollama, llama.cpp) accept it, so it is the normalised form. Adapters for other wire
formats (Anthropic) translate both ways; adapters for OpenAI-compatible servers pass bytes
through and only parse what the gateway must read (usage, finish reason).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from seamline.telemetry.prices import FREE, Price

# Where a provider sends calls when a deployment names no base URL. One table, so that the
# gateway checks a registry model's destination against the very URL it will call.
DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


@dataclass(frozen=True)
class Deployment:
    """One place a model name is served from."""

    id: str
    model: str  # the name clients ask for
    provider: str
    upstream_model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    weight: float = 1.0
    tier: str | None = None
    context_window: int | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    total_timeout_s: float = 600.0
    stream_idle_timeout_s: float = 60.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    price: Price = FREE  # USD per million tokens, what the call is costed at
    stream_usage: bool = True  # whether the upstream accepts stream_options.include_usage
    engine: str | None = None  # the serving engine behind it, when its metrics are read
    metrics_url: str | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        if not usage:
            return None
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int(details.get("cached_tokens") or 0),
        )


@dataclass(frozen=True)
class ChatResult:
    body: dict[str, Any]  # an OpenAI chat.completion object
    usage: Usage | None
    raw: bytes | None = None  # the upstream's bytes, when they can be forwarded as they are


@dataclass(frozen=True)
class StreamChunk:
    """One chat.completion.chunk; ``raw`` is the SSE line to forward when unchanged."""

    data: dict[str, Any]
    raw: bytes | None = None


class UpstreamError(Exception):
    """The upstream failed. ``retryable`` failures (429, 5xx, timeouts, connection errors)
    may go to another attempt or deployment; others (a 400 for a bad request) go back to the
    caller."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        timeout: bool = False,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.timeout = timeout
        self.retry_after = retry_after
        self.body = body


class Provider(Protocol):
    name: str

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        """``body`` is an OpenAI chat request whose ``model`` is already the upstream's."""
        ...

    def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[StreamChunk]:
        """Chunks of a streamed answer; raises :class:`UpstreamError` before the first chunk
        or mid-stream."""
        ...

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult: ...

    async def close(self) -> None: ...
