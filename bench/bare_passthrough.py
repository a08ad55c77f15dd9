"""The floor: the least a Python gateway can do per call, to measure seamline against.

A raw ASGI app on uvicorn with uvloop and httptools (the stack ``seamline serve`` runs on),
one shared aiohttp ``ClientSession`` to the upstream (the gateway's client), and per call
only what any gateway must do: read and parse the JSON body, check the bearer key (its
SHA-256 looked up in a dict), set the upstream model, forward the body, read ``usage`` from
the answer (every SSE event parsed, for a streamed call), pass the answer on, and record the
call as a small dict appended to a bounded in-memory deque. No registry, limits, budgets,
metrics, store or error mapping: what seamline spends above this floor is the price of its
features (``bench/gateway_overhead.py`` prints the ratio).

uvicorn runs as ``seamline serve`` runs it: one worker, uvloop, httptools, no WebSockets,
log level ``info``, no access log (with one, a line per request cost ~0.06-0.09 ms of CPU per
call here, a third of this floor).

Run: ``BARE_KEY=sk-... python -m bench.bare_passthrough PORT UPSTREAM_PORT``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
UNAUTHORISED = b'{"error":{"type":"invalid_request_error","code":"invalid_api_key"}}'


class BarePassthrough:
    def __init__(self, upstream: str, keys: dict[str, str], models: dict[str, str]) -> None:
        self.upstream = upstream
        self.models = models  # the gateway's name for a model -> the upstream's
        self.keys = keys  # SHA-256 of the key -> its owner
        self.events: deque[dict[str, Any]] = deque(maxlen=100_000)
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            await self._chat(scope, receive, send)
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": JSON})
            await send({"type": "http.response.body", "body": b"{}"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        owner = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                owner = self.keys.get(hashlib.sha256(value[7:]).hexdigest())
        if owner is None:
            await send({"type": "http.response.start", "status": 401, "headers": JSON})
            await send({"type": "http.response.body", "body": UNAUTHORISED})
            return
        body = orjson.loads(b"".join(chunks))
        model = body["model"]
        body["model"] = self.models.get(model, model)
        assert self.session is not None
        usage: dict[str, Any] | None = None
        async with self.session.post(
            self.upstream, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
        ) as response:
            if body.get("stream"):
                await send(
                    {"type": "http.response.start", "status": response.status, "headers": SSE}
                )
                async for line in response.content:
                    if line.startswith(b"data: ") and line[6:12] != b"[DONE]":
                        usage = orjson.loads(line[6:]).get("usage") or usage
                    if line.strip():
                        await send(
                            {"type": "http.response.body", "body": line + b"\n", "more_body": True}
                        )
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                raw = await response.read()
                usage = orjson.loads(raw).get("usage")
                await send(
                    {"type": "http.response.start", "status": response.status, "headers": JSON}
                )
                await send({"type": "http.response.body", "body": raw})
        self.events.append(
            {
                "id": uuid.uuid4().hex,
                "owner": owner,
                "model": model,
                "status": response.status,
                "usage": usage,
                "latency_ms": (time.perf_counter() - started) * 1000,
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("upstream_port", type=int)
    args = parser.parse_args()
    port, upstream_port = args.port, args.upstream_port
    key = os.environ["BARE_KEY"]
    app = BarePassthrough(
        f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
        {hashlib.sha256(key.encode()).hexdigest(): "bench"},
        {"bench-model": "bench-model"},
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
