"""Anthropic's Messages API behind the OpenAI format, both ways, streaming and tools included.

Requests: system and developer messages become ``system``; tool calls become ``tool_use``
blocks and tool results ``tool_result`` blocks in a user turn; consecutive turns of one role
merge (the API wants them alternating); ``max_tokens`` is required there, so a default fills
in. ``response_format`` (JSON object or JSON Schema) becomes one more tool, forced, whose
input is the answer: Anthropic's tool use constrains arguments to a schema on every model,
while its own structured-output mode does not exist on all of them. Answers: text and
``tool_use`` blocks become ``content`` and ``tool_calls`` (the output tool's input becomes
the ``content``); stop reasons and usage map to OpenAI's names. Streams: Anthropic's typed
events become chunk objects, and the final usage arrives as OpenAI's usage chunk.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from seamline.providers.base import (
    DEFAULT_BASE_URLS,
    ChatResult,
    Deployment,
    StreamChunk,
    UpstreamError,
    Usage,
)
from seamline.providers.http_upstream import HttpUpstream, parse_json

ANTHROPIC_VERSION = "2023-06-01"
OUTPUT_TOOL = "structured_output"  # the tool whose input carries a response_format answer
DEFAULT_MAX_TOKENS = 4096
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


class AnthropicProvider(HttpUpstream):
    name = "anthropic"

    @staticmethod
    def _url(deployment: Deployment) -> str:
        base = deployment.base_url or DEFAULT_BASE_URLS["anthropic"]
        return f"{base.rstrip('/')}/v1/messages"

    @staticmethod
    def _headers(deployment: Deployment) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            "x-api-key": deployment.api_key or "",
            **deployment.extra_headers,
        }

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        parsed, _ = await self.post_json(
            deployment, self._url(deployment), to_anthropic(body), self._headers(deployment)
        )
        answer = from_anthropic(parsed, deployment.model)
        return ChatResult(answer, Usage.from_openai(answer["usage"]))

    async def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[StreamChunk]:
        request = {**to_anthropic(body), "stream": True}
        events = self.post_sse(
            deployment, self._url(deployment), request, self._headers(deployment)
        )
        state = _StreamState(deployment.model)
        async with aclosing(events):
            async for name, payload in events:
                data = parse_json(deployment, payload)
                kind = str(data.get("type") or name or "")
                if kind == "error":
                    error = data.get("error") or {}
                    overloaded = error.get("type") == "overloaded_error"
                    raise UpstreamError(
                        f"{deployment.id}: {error.get('message', 'error')}",
                        status=529 if overloaded else 502,
                        retryable=overloaded,
                    )
                for chunk in state.translate(kind, data):
                    yield StreamChunk(chunk)
                if kind == "message_stop":
                    return
        raise UpstreamError(f"{deployment.id}: stream ended before message_stop", status=502)

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        raise UpstreamError("Anthropic serves no embeddings", status=400)


def to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
            continue
        if role == "tool":
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id", ""),
                    "content": _text(message.get("content")),
                }
            ]
            role = "user"
        else:
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": _arguments(function.get("arguments")),
                    }
                )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    request: dict[str, Any] = {
        "model": body["model"],
        "messages": turns,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        request["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        request["temperature"] = min(float(body["temperature"]), 1.0)  # Anthropic: 0..1
    if body.get("top_p") is not None:
        request["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        request["tools"] = [
            {
                "name": t["function"].get("name", ""),
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in body["tools"]
            if t.get("type") == "function" and isinstance(t.get("function"), dict)
        ]
        choice = _tool_choice(body.get("tool_choice"))
        if choice:
            request["tool_choice"] = choice
    output = _output_tool(body.get("response_format"))
    if output is not None:
        tools = request.setdefault("tools", [])
        if any(t["name"] == OUTPUT_TOOL for t in tools):
            raise UpstreamError(
                f"a tool named {OUTPUT_TOOL!r} cannot be used with response_format on an "
                "Anthropic model",
                status=400,
            )
        tools.append(output)
        # Without tools of its own the model must answer through the output tool; with
        # them it may call one of those first, and answers through the output tool last.
        forced = {"type": "tool", "name": OUTPUT_TOOL}
        request["tool_choice"] = forced if len(tools) == 1 else {"type": "any"}
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}
    return request


def _output_tool(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict) or response_format.get("type") == "text":
        return None
    schema: dict[str, Any] = {"type": "object"}
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or schema
    return {
        "name": OUTPUT_TOOL,
        "description": "Give your final answer by calling this tool; its input is the answer.",
        "input_schema": schema,
    }


def from_anthropic(answer: dict[str, Any], model: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in answer.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use" and block.get("name") == OUTPUT_TOOL:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": answer.get("id", "msg"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish(answer.get("stop_reason"), bool(calls)),
            }
        ],
        "usage": _usage(answer.get("usage") or {}),
    }


class _StreamState:
    """Anthropic stream events in, OpenAI chunks out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = "msg"
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.output_block: int | None = None  # the content block of the output tool

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def translate(self, kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id", self.id)
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use" and block.get("name") == OUTPUT_TOOL:
                self.output_block = data.get("index", 0)
                return []
            if block.get("type") == "tool_use":
                index = self.tool_index.setdefault(data.get("index", 0), len(self.tool_index))
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id"),
                                    "type": "function",
                                    "function": {"name": block.get("name"), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            if block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta" and data.get("index", 0) == (
                self.output_block
            ):
                return [self._chunk({"content": delta.get("partial_json", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tool_index.get(data.get("index", 0), 0)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "function": {"arguments": delta.get("partial_json", "")},
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "message_delta":
            self.usage.update(data.get("usage") or {})
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, _finish(reason, bool(self.tool_index)))]
        if kind == "message_stop":
            return [
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": _usage(self.usage),
                }
            ]
        return []  # ping, content_block_stop


def _finish(stop_reason: str | None, called_tools: bool) -> str:
    """OpenAI's finish reason; a turn that ended in the output tool alone simply stopped."""
    if stop_reason == "tool_use" and not called_tools:
        return "stop"
    return STOP_REASONS.get(stop_reason or "", "stop")


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = (
        int(usage.get("input_tokens") or 0)
        + cached
        + int(usage.get("cache_creation_input_tokens") or 0)
    )
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in content
            if isinstance(p, str | dict)
        )
    return "" if content is None else str(content)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
            continue
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:"):
                media, _, data = url[5:].partition(";base64,")
                blocks.append(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": media, "data": data},
                    }
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return orjson.loads(arguments) if arguments else {}
        except orjson.JSONDecodeError:
            return {}
    return arguments or {}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice in (None, "auto"):
        return None if choice is None else {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    return None
