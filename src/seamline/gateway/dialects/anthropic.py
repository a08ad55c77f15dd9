"""Anthropic's Messages API (``POST /v1/messages``) onto any upstream.

The Anthropic SDK and the coding agents built on it send typed content blocks, a separate
``system``, ``tool_use``/``tool_result`` blocks and ``x-api-key``; they read typed stream
events and ``{"type": "error", ...}`` bodies. This dialect carries all of that through the
chat request path, so a Claude-shaped client reaches any model the gateway serves. What a
chat upstream cannot honour (server tools, documents) is refused with a 400 that names it.
``thinking`` and ``output_config.effort`` are hints about how hard to think, not what to
answer, and chat upstreams have no common setting for them: they are not forwarded. Nor are
settings about the Anthropic service itself (caching markers, service tier, speed, region,
workspace). ``output_config.format`` (structured output) becomes ``response_format``.

The opposite direction (OpenAI-shaped requests onto Anthropic upstreams) lives in
``providers/anthropic.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from seamline.core.errors import InvalidInput, SeamlineError
from seamline.gateway.server.http import Scope, bearer_token, header, sse_event

# OpenAI finish reasons as Anthropic stop reasons: the inverse of the provider's table,
# where several stop reasons share one finish reason.
FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Anthropic's error types by HTTP status (its SDK picks the exception class by status).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
# Request fields read below, and hints or settings of Anthropic's service: not forwarded.
IGNORED = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "stream",
        "thinking",
        "cache_control",
        "service_tier",
        "speed",
        "inference_geo",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    }
)
CARRIED = {"temperature": "temperature", "top_p": "top_p"}


class AnthropicMessages:
    route = "/v1/messages"

    def credentials(self, scope: Scope) -> str | None:
        return header(scope, b"x-api-key") or bearer_token(scope)

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return messages_to_chat(body)

    def answer(self, completion: dict[str, Any], raw: bytes | None) -> bytes:
        return orjson.dumps(chat_to_message(completion))

    def writer(self, model: str, include_usage: bool) -> MessageStream:
        return MessageStream(model)

    def error_body(self, error: SeamlineError) -> dict[str, Any]:
        return error_body(error)


def error_body(error: SeamlineError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def messages_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages request as an OpenAI chat body."""
    model, max_tokens, turns = body.get("model"), body.get("max_tokens"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise InvalidInput("model: Field required", param="model")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidInput("max_tokens: must be a positive integer", param="max_tokens")
    if not isinstance(turns, list) or not turns:
        raise InvalidInput("messages: must be a non-empty list", param="messages")
    messages = _system(body.get("system"))
    for i, turn in enumerate(turns):
        messages.extend(_turn(turn, f"messages.{i}"))
    chat: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    for name, target in CARRIED.items():
        if body.get(name) is not None:
            chat[target] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    if body.get("stream"):
        chat["stream"] = True
    if body.get("tools"):
        chat["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(body["tools"])]
    if body.get("tool_choice") is not None:
        chat.update(_tool_choice(body["tool_choice"]))
    if body.get("output_config") is not None:
        chat.update(_output_format(body["output_config"]))
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        chat["user"] = str(user)
    if body.get("seamline") is not None:  # the gateway's own extension passes as in chat
        chat["seamline"] = body["seamline"]
    unknown = sorted(set(body) - IGNORED - set(CARRIED) - _TRANSLATED)
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: not supported by this gateway's Messages API", param=unknown[0]
        )
    return chat


_TRANSLATED = frozenset(
    {"stop_sequences", "tools", "tool_choice", "metadata", "seamline", "output_config"}
)


def _output_format(config: Any) -> dict[str, Any]:
    output = config.get("format") if isinstance(config, dict) else None
    if output is None:
        return {}
    if not isinstance(output, dict) or output.get("type") != "json_schema":
        raise InvalidInput(
            "output_config.format: only json_schema is supported", param="output_config.format"
        )
    spec = {"name": "output", "schema": output.get("schema") or {}, "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        return [{"role": "system", "content": "".join(_texts(system, "system"))}]
    raise InvalidInput("system: must be a string or a list of text blocks", param="system")


def _turn(turn: Any, where: str) -> list[dict[str, Any]]:
    """One Messages turn as chat messages: a user turn's tool results become ``tool``
    messages (before its other content, as the tool calls they answer came first)."""
    if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
        raise InvalidInput(f"{where}.role: must be 'user' or 'assistant'", param=f"{where}.role")
    role, content = turn["role"], turn.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidInput(f"{where}.content: must be a string or a list", param=where)
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        place = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image" and role == "user":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, place)}})
        elif kind == "tool_result" and role == "user":
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": str(block.get("tool_use_id", "")),
                    "content": _tool_result_text(block, place),
                }
            )
        elif kind == "tool_use" and role == "assistant":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # the model's earlier reasoning: not part of what a chat upstream reads
        else:
            raise InvalidInput(f"{place}: {kind!r} blocks are not supported here", param=place)
    messages = results
    if role == "assistant":
        text = "".join(p["text"] for p in parts)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        if text or calls:
            messages.append(message)
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        content_out = "".join(p["text"] for p in parts) if only_text else parts
        messages.append({"role": "user", "content": content_out})
    return messages


def _texts(blocks: list[Any], where: str) -> list[str]:
    texts = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidInput(f"{where}.{j}: only text blocks are supported", param=where)
        texts.append(str(block.get("text", "")))
    return texts


def _tool_result_text(block: dict[str, Any], where: str) -> str:
    content = block.get("content")
    text = content if isinstance(content, str) else "".join(_texts(content or [], where))
    return f"Error: {text}" if block.get("is_error") else text


def _image_url(block: dict[str, Any], where: str) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return str(source.get("url", ""))
    raise InvalidInput(f"{where}.source: only base64 and url images are supported", param=where)


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidInput(
            f"{where}: server tools ({kind!r}) are not supported; declare client tools",
            param=where,
        )
    return {
        "type": "function",
        "function": {
            "name": tool.get("name", ""),
            "description": tool.get("description", ""),
            "parameters": tool.get("input_schema") or {"type": "object"},
        },
    }


def _tool_choice(choice: Any) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    chosen: dict[str, Any]
    if kind == "auto":
        chosen = {"tool_choice": "auto"}
    elif kind == "any":
        chosen = {"tool_choice": "required"}
    elif kind == "none":
        chosen = {"tool_choice": "none"}
    elif kind == "tool":
        chosen = {"tool_choice": {"type": "function", "function": {"name": choice.get("name")}}}
    else:
        raise InvalidInput("tool_choice: unknown type", param="tool_choice")
    if choice.get("disable_parallel_tool_use"):
        chosen["parallel_tool_calls"] = False
    return chosen


def chat_to_message(completion: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion as a Messages answer."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _id("toolu"),
                "name": function.get("name", ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    return {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": FINISH_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(completion.get("usage") or {}),
    }


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _arguments(arguments: Any) -> Any:
    try:
        return orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {"_unparsed_arguments": arguments}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class MessageStream:
    """Chat chunks in, Messages stream events out: a text block, then a block per tool
    call, each opened on its first delta and closed when the next one opens."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block = -1  # index of the open content block
        self.open_kind: str | None = None  # "text", or the tool call's index as a string
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}

    def chunk(self, chunk: dict[str, Any], raw: bytes | None) -> bytes:
        out = [] if self.started else [self._start(chunk)]
        self.started = True
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.extend(self._open("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                kind = f"tool{call.get('index', 0)}"
                function = call.get("function") or {}
                if kind != self.open_kind:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id") or _id("toolu"),
                        "name": function.get("name", ""),
                        "input": {},
                    }
                    out.extend(self._open(kind, block))
                if function.get("arguments"):
                    partial = {"type": "input_json_delta", "partial_json": function["arguments"]}
                    out.append(self._delta(partial))
            self.finish = choice.get("finish_reason") or self.finish
        return b"".join(out)

    def end(self) -> bytes:
        out = [] if self.started else [self._start({})]
        out.extend(self._close())
        usage = _usage(self.usage)
        reason = FINISH_REASONS.get(self.finish or "stop", "end_turn")
        out.append(
            sse_event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": usage,
                },
                "message_delta",
            )
        )
        out.append(sse_event({"type": "message_stop"}, "message_stop"))
        return b"".join(out)

    def fail(self, error: SeamlineError) -> bytes:
        return sse_event(error_body(error), "error")

    def _start(self, chunk: dict[str, Any]) -> bytes:
        message: dict[str, Any] = {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse_event({"type": "message_start", "message": message}, "message_start")

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        if kind == self.open_kind:
            return []
        out = self._close()
        self.block += 1
        self.open_kind = kind
        event = {"type": "content_block_start", "index": self.block, "content_block": block}
        out.append(sse_event(event, "content_block_start"))
        return out

    def _close(self) -> list[bytes]:
        if self.open_kind is None:
            return []
        self.open_kind = None
        stop = {"type": "content_block_stop", "index": self.block}
        return [sse_event(stop, "content_block_stop")]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        event = {"type": "content_block_delta", "index": self.block, "delta": delta}
        return sse_event(event, "content_block_delta")
