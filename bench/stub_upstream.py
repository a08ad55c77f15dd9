"""The fastest upstream we can write: a raw asyncio HTTP server on loopback that answers every
chat completion with the same bytes (JSON, or an SSE stream when the body asks for one).

It runs in its own process so that its CPU is not counted as the gateway's. Run:
``python -m bench.stub_upstream PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvloop

WORDS = ["The", " answer", " is", " forty", "-two", "."]


def _completion() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "".join(WORDS)},
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 6, "total_tokens": 48},
        }
    ).encode()


def _chunk(choices: list[dict[str, object]], **extra: object) -> str:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n"


def _stream() -> bytes:
    events = [
        _chunk([{"index": 0, "delta": {"content": word}, "finish_reason": None}]) for word in WORDS
    ]
    events.append(_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    usage = {"prompt_tokens": 42, "completion_tokens": 6, "total_tokens": 48}
    events.append(_chunk([], usage=usage))
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def _response(body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


JSON_RESPONSE = _response(_completion(), b"application/json")
SSE_RESPONSE = _response(_stream(), b"text/event-stream")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            streamed = b'"stream":true' in body.replace(b" ", b"")
            writer.write(SSE_RESPONSE if streamed else JSON_RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
