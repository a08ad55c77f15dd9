"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat and embeddings wire format,
SSE included, standing in for a paid provider in tests. It can be told to add latency,
answer 429 or 500, or cut a stream half-way."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.live import free_port


@dataclass
class Faults:
    """What the next calls should suffer; ``fail_next`` counts down."""

    fail_next: int = 0
    fail_status: int = 500
    retry_after: str | None = None
    latency_s: float = 0.0
    cut_stream_after: int | None = None  # chunks sent before the connection drops
    omit_usage: bool = False
    call_tool: str | None = None  # answer by calling this function, declared or not


def _tool_call(name: str) -> dict[str, Any]:
    return {"id": "call_stub", "type": "function", "function": {"name": name, "arguments": "{}"}}


def bag_of_words(item: Any, dimensions: int = 32) -> list[float]:
    """A stand-in embedding that still means something: each word counted into a bucket
    by its hash, so texts sharing words are near (retrieval through a configured embedding
    model can be tested against it)."""
    vector = [0.0] * dimensions
    words = re.findall(r"[a-z0-9]+", str(item).lower())
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest) % dimensions] += 1.0
    return vector if words else [1.0] + [0.0] * (dimensions - 1)


@dataclass
class StubUpstream:
    name: str = "stub"
    port: int = field(default_factory=free_port)
    faults: Faults = field(default_factory=Faults)
    requests: list[dict[str, Any]] = field(default_factory=list)
    cancelled_streams: int = 0
    hooks: list[dict[str, Any]] = field(default_factory=list)  # webhook calls received
    # What non-streamed answers say answered: the model (default: the one asked) and build.
    reported_model: str | None = None
    fingerprint: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply_text(self, body: dict[str, Any]) -> str:
        last = body["messages"][-1].get("content") if body.get("messages") else ""
        return f"[{self.name}] echo: {last}"

    async def _maybe_fail(self) -> web.Response | None:
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        if self.faults.fail_next > 0:
            self.faults.fail_next -= 1
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else {}
            error = {
                "error": {
                    "message": f"{self.name} injected {self.faults.fail_status}",
                    "type": "server_error",
                    "code": None,
                }
            }
            return web.json_response(error, status=self.faults.fail_status, headers=headers)
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        failure = await self._maybe_fail()
        if failure is not None:
            return failure
        text = self.reply_text(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        answers = body.get("n") or 1  # as OpenAI: n answers, each billed; the prompt once
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()) * answers,
            "total_tokens": prompt_tokens + len(text.split()) * answers,
        }
        created = int(time.time())
        if self.faults.call_tool and not body.get("stream"):
            message = {"role": "assistant", "content": None}
            message["tool_calls"] = [_tool_call(self.faults.call_tool)]
            choice = {"index": 0, "finish_reason": "tool_calls", "message": message}
            return web.json_response(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "usage": usage,
                    "choices": [choice],
                }
            )
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": created,
                    "model": self.reported_model or body["model"],
                    "system_fingerprint": self.fingerprint,
                    "usage": None if self.faults.omit_usage else usage,
                    "choices": [
                        {
                            "index": index,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                        for index in range(answers)
                    ],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = text.split(" ")
        try:
            if self.faults.call_tool:
                delta = {"tool_calls": [{"index": 0, **_tool_call(self.faults.call_tool)}]}
                called = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                await response.write(f"data: {json.dumps(called)}\n\n".encode())
                words = []
            for index, word in enumerate(words):
                if (
                    self.faults.cut_stream_after is not None
                    and index >= self.faults.cut_stream_after
                ):
                    request.transport.close()  # type: ignore[union-attr]
                    return response
                chunk = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": word + (" " if index < len(words) - 1 else "")},
                            "finish_reason": None,
                        }
                    ],
                }
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if self.faults.latency_s:
                    await asyncio.sleep(self.faults.latency_s)
            final = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            await response.write(f"data: {json.dumps(final)}\n\n".encode())
            if (body.get("stream_options") or {}).get(
                "include_usage"
            ) and not self.faults.omit_usage:
                tail = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [],
                    "usage": usage,
                }
                await response.write(f"data: {json.dumps(tail)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled_streams += 1
            raise
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        failure = await self._maybe_fail()
        if failure is not None:
            return failure
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": bag_of_words(item)}
            for i, item in enumerate(inputs)
        ]
        tokens = sum(len(str(t).split()) for t in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API: text echo, or a tool_use block when tools are offered."""
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), **body})
        failure = await self._maybe_fail()
        if failure is not None:
            return failure
        if request.headers.get("anthropic-version") != "2023-06-01" or "max_tokens" not in body:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "bad request"},
                },
                status=400,
            )
        last = body["messages"][-1]["content"]
        text = (
            last
            if isinstance(last, str)
            else " ".join(b.get("text", "") or str(b.get("content", "")) for b in last)
        )
        usage = {"input_tokens": 11, "output_tokens": 5, "cache_read_input_tokens": 3}
        tool = body.get("tools", [None])[0]
        content: list[dict[str, Any]] = [{"type": "text", "text": f"[{self.name}] {text}"}]
        stop = "end_turn"
        if tool is not None:
            content = [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": tool["name"],
                    "input": {"city": "Oslo"},
                }
            ]
            stop = "tool_use"
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": content,
                    "stop_reason": stop,
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        await event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": body["model"],
                    "usage": {"input_tokens": 11, "output_tokens": 1, "cache_read_input_tokens": 3},
                },
            },
        )
        await event("ping", {"type": "ping"})
        block = content[0]
        if block["type"] == "text":
            await event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for word in block["text"].split(" "):
                await event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word + " "},
                    },
                )
        else:
            await event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {**block, "input": {}},
                },
            )
            for part in ('{"city": ', '"Oslo"}'):
                await event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop},
                "usage": {"output_tokens": 5},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        return response

    async def hook(self, request: web.Request) -> web.Response:
        self.hooks.append(await request.json())
        return web.json_response({"ok": True})

    def start(self) -> StubUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/hook", self.hook)
        app.router.add_post("/v1/messages", self.messages)
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
