"""The gateway's ``/v1`` endpoints in ``/openapi.json``.

They are served on raw ASGI (see ``http.py``), ahead of the FastAPI app, so FastAPI never
routes them; these declarations exist so that the schema documents them for clients and for
schema-driven tests. Only what the gateway itself reads is typed; every other OpenAI field
passes through to the upstream.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from seamline.core.errors import NotFound


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class SeamlineExtension(BaseModel):
    variables: dict[str, Any] = Field(
        default_factory=dict, description="the registry prompt's variables"
    )
    cache: bool = True


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request. ``model`` is a model name or ``prompt:NAME@ALIAS``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["local-smollm2", "prompt:support-answer@production"])
    messages: list[ChatMessage] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = Field(
        default=None, description="user_id, session_id and use_case attribute the call"
    )
    seamline: SeamlineExtension | None = None


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["local-minilm"])
    input: str | list[str]


class FeedbackRequest(BaseModel):
    """A user's score of a call (or a session): ``score`` ``up``/``down`` or a rating 1-5,
    or a ``metric`` with a ``value``. The same user scoring the same metric again replaces
    the earlier score."""

    request_id: str | None = Field(default=None, examples=["req_1a2b3c4d5e6f7a8b9c0d1e2f"])
    session_id: str | None = None
    score: str | int | None = Field(default=None, examples=["up", 4])
    metric: str | None = None
    value: float | None = None
    comment: str | None = Field(default=None, max_length=4000)
    tags: list[str] | None = None
    user: str | None = None


def _served_by_the_gateway() -> None:
    raise NotFound("served by the gateway's ASGI routes")


def document_gateway(app: FastAPI) -> None:
    common: dict[str, Any] = {
        "tags": ["gateway"],
        "response_model": None,
        "responses": {401: {}, 404: {}, 429: {}, 502: {}, 504: {}},
    }

    async def chat_completions(body: ChatCompletionRequest) -> dict[str, Any]:
        """Chat completion, OpenAI-compatible, streamed as SSE when ``stream`` is true."""
        _served_by_the_gateway()
        return {}

    async def embeddings(body: EmbeddingsRequest) -> dict[str, Any]:
        """Embeddings, OpenAI-compatible."""
        _served_by_the_gateway()
        return {}

    async def models() -> dict[str, Any]:
        """The model names this gateway serves."""
        _served_by_the_gateway()
        return {}

    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"], **common)
    app.add_api_route("/v1/embeddings", embeddings, methods=["POST"], **common)

    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        """Feedback on a call of the key's project: 201 new, 200 replaced, 404 unknown."""
        _served_by_the_gateway()
        return {}

    app.add_api_route("/v1/models", models, methods=["GET"], **common)
    app.add_api_route("/v1/feedback", feedback, methods=["POST"], **common)
