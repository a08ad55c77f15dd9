"""Chat answers as OpenAI Responses: the ``Response`` object, and the typed events that
stream it (``response.created`` ... ``response.completed``, numbered by
``sequence_number``), for the Responses dialect (``dialects/responses.py``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from seamline.core.errors import SeamlineError
from seamline.gateway.server.http import sse_event

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def chat_to_response(
    completion: dict[str, Any], echo: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A chat.completion as a Response object, repeating ``echo`` (the request's settings)."""
    suffix = _suffix(completion.get("id"))
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    status, _ = _status(choice.get("finish_reason"))
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):  # a few upstreams answer with text parts
        text = "".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
    if text:
        content.append(_output_text(text))
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": message["refusal"]})
    output: list[dict[str, Any]] = []
    if content:
        output.append(_message_item(_item_id("msg", suffix, 0), status, content))
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        call_id = call.get("id") or f"call_{suffix}_{i}"
        item = _call_item(call_id, str(function.get("name", "")), status)
        item["arguments"] = str(function.get("arguments") or "")
        output.append(item)
    return _response(
        f"resp_{suffix}",
        completion.get("created"),
        completion.get("model"),
        output,
        choice.get("finish_reason"),
        completion.get("usage"),
        echo=echo,
    )


def _suffix(completion_id: Any) -> str:
    """A fresh id for every response: upstreams reuse completion ids, and a cached answer
    replayed is a new response. (The call's ``x-request-id`` links it to its event.)"""
    return uuid.uuid4().hex[:24]


def _item_id(prefix: str, suffix: str, index: int) -> str:
    return f"{prefix}_{suffix}" if index == 0 else f"{prefix}_{suffix}_{index}"


def _status(finish_reason: Any) -> tuple[str, dict[str, Any] | None]:
    reason = INCOMPLETE.get(finish_reason)
    return ("completed", None) if reason is None else ("incomplete", {"reason": reason})


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _call_item(call_id: str, name: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + call_id.removeprefix("call_"),
        "call_id": call_id,
        "name": name,
        "arguments": "",
        "status": status,
    }


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _response(
    response_id: str,
    created: Any,
    model: Any,
    output: list[dict[str, Any]],
    finish_reason: Any,
    usage: dict[str, Any] | None,
    *,
    status: str | None = None,
    error: dict[str, Any] | None = None,
    echo: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response object; ``status`` overrides what ``finish_reason`` says (in_progress,
    failed); ``echo`` replaces the neutral settings with those the request gave."""
    final, details = _status(finish_reason)
    status = status or final
    now = int(time.time())
    response = {
        "id": response_id,
        "object": "response",
        "created_at": created or now,
        "status": status,
        "completed_at": now if status == "completed" else None,
        "error": error,
        "incomplete_details": details if status == "incomplete" else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "store": False,
        "temperature": None,
        "text": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": _usage(usage),
        "metadata": {},
    }
    if echo:
        response.update(echo)
    return response


# The stream ------------------------------------------------------------------------------


@dataclass
class _Item:
    body: dict[str, Any]  # the output item as the client reads it
    index: int  # its output_index
    done: bool = False


class ResponseStream:
    """Chat chunks in, Responses events out: ``response.created`` on the first chunk, then
    an output item per answer (a message whose content parts follow the text and refusal
    deltas, a function call per tool call), each opened on its first delta and closed when
    the next one opens, and ``response.completed`` (or ``.incomplete``) with the usage."""

    def __init__(self, model: str, echo: dict[str, Any] | None = None) -> None:
        self.model = model
        self.echo = echo
        self.sequence = 0
        self.started = False
        self.suffix = ""
        self.created: int | None = None
        self.output: list[_Item] = []
        self.open: _Item | None = None
        self.calls: dict[int, _Item] = {}  # the chat tool call index's item
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def chunk(self, chunk: dict[str, Any], raw: bytes | None) -> bytes:
        out = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.extend(self._text("output_text", delta["content"]))
            if delta.get("refusal"):
                out.extend(self._text("refusal", delta["refusal"]))
            for call in delta.get("tool_calls") or []:
                out.extend(self._call(call))
            self.finish = choice.get("finish_reason") or self.finish
        return b"".join(out)

    def end(self) -> bytes:
        out = [] if self.started else self._start({})
        status, _ = _status(self.finish)
        out.extend(self._close(status))
        name = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(name, {"response": self._snapshot()}))
        return b"".join(out)

    def fail(self, error: SeamlineError) -> bytes:
        out = [] if self.started else self._start({})
        for item in self.output:
            if not item.done:
                item.body["status"] = "incomplete"
        # ResponseError's codes are OpenAI's; an upstream that failed mid-answer is theirs.
        failure = {"code": "server_error", "message": error.message}
        response = self._snapshot(status="failed", error=failure)
        out.append(self._event("response.failed", {"response": response}))
        return b"".join(out)

    def _snapshot(self, **changes: Any) -> dict[str, Any]:
        return _response(
            f"resp_{self.suffix}",
            self.created,
            self.model,
            [item.body for item in self.output],
            self.finish,
            self.usage,
            echo=self.echo,
            **changes,
        )

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        event = {"type": name, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return sse_event(event, name)

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        self.suffix = _suffix(chunk.get("id"))
        self.created = chunk.get("created")
        self.model = chunk.get("model") or self.model
        return [
            self._event(name, {"response": self._snapshot(status="in_progress")})
            for name in ("response.created", "response.in_progress")
        ]

    def _add(self, body: dict[str, Any]) -> tuple[_Item, list[bytes]]:
        out = self._close("completed")
        item = _Item({**body, "status": "in_progress"}, len(self.output))
        self.output.append(item)
        self.open = item
        # Events are serialised as they are made: later deltas do not change this one.
        added = {"output_index": item.index, "item": item.body}
        out.append(self._event("response.output_item.added", added))
        return item, out

    def _text(self, kind: str, delta: str) -> list[bytes]:
        out: list[bytes] = []
        item = self.open
        if item is None or item.body["type"] != "message":
            message = _message_item(_item_id("msg", self.suffix, len(self.output)), "", [])
            item, out = self._add(message)
        parts = item.body["content"]
        if not parts or parts[-1]["type"] != kind:
            out.extend(self._close_part(item))
            part = _output_text("") if kind == "output_text" else {"type": kind, "refusal": ""}
            parts.append(part)
            out.append(self._part_event("response.content_part.added", item, part))
        field = "text" if kind == "output_text" else "refusal"
        parts[-1][field] += delta
        where = {"item_id": item.body["id"], "output_index": item.index}
        where["content_index"] = len(parts) - 1
        extra: dict[str, Any] = {"logprobs": []} if kind == "output_text" else {}
        out.append(self._event(f"response.{kind}.delta", {**where, "delta": delta, **extra}))
        return out

    def _call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            call_id = call.get("id") or f"call_{self.suffix}_{index}"
            item, out = self._add(_call_item(call_id, str(function.get("name") or ""), ""))
            self.calls[index] = item
        elif function.get("name") and not item.body["name"]:
            item.body["name"] = function["name"]
        if function.get("arguments"):
            item.body["arguments"] += function["arguments"]
            delta = {
                "item_id": item.body["id"],
                "output_index": item.index,
                "delta": function["arguments"],
            }
            out.append(self._event("response.function_call_arguments.delta", delta))
        return out

    def _close_part(self, item: _Item) -> list[bytes]:
        parts = item.body["content"]
        if not parts:
            return []
        part = parts[-1]
        where = {
            "item_id": item.body["id"],
            "output_index": item.index,
            "content_index": len(parts) - 1,
        }
        if part["type"] == "output_text":
            done = self._event(
                "response.output_text.done", {**where, "text": part["text"], "logprobs": []}
            )
        else:
            done = self._event("response.refusal.done", {**where, "refusal": part["refusal"]})
        return [done, self._part_event("response.content_part.done", item, part)]

    def _part_event(self, name: str, item: _Item, part: dict[str, Any]) -> bytes:
        content_index = len(item.body["content"]) - 1
        data = {
            "item_id": item.body["id"],
            "output_index": item.index,
            "content_index": content_index,
            "part": part,
        }
        return self._event(name, data)

    def _close(self, status: str) -> list[bytes]:
        item, self.open = self.open, None
        if item is None or item.done:
            return []
        item.done = True
        item.body["status"] = status
        if item.body["type"] == "message":
            out = self._close_part(item)
        else:
            arguments = {
                "item_id": item.body["id"],
                "output_index": item.index,
                "arguments": item.body["arguments"],
            }
            out = [self._event("response.function_call_arguments.done", arguments)]
        done = {"output_index": item.index, "item": item.body}
        out.append(self._event("response.output_item.done", done))
        return out
