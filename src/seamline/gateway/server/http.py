"""Raw ASGI plumbing for the gateway's hot path.

The ``/v1`` endpoints are plain ASGI callables rather than Starlette or FastAPI routes: the
gateway's CPU per call is a headline figure, and a framework's request objects, middleware
stack and validation layers cost more than the whole budget allows (FACTS.md: raw ASGI with
uvloop, httptools and aiohttp measured 0.6 ms per pass-through call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from seamline.core.errors import (
    ContentBlocked,
    InternalError,
    InvalidInput,
    PayloadTooLarge,
    SeamlineError,
    Unavailable,
)
from seamline.telemetry.event import STATUS_BLOCKED, STATUS_ERROR, CallEvent
from seamline.telemetry.otel import parse_traceparent

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("seamline.gateway")

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def bearer_token(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value is None:
        return header(scope, b"api-key")  # Azure OpenAI clients send the key here
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput(
                "client disconnected before sending the body", code="client_disconnected"
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"invalid JSON body: {exc}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise InvalidInput("the JSON body must be an object", code="invalid_json")
    return value


def _header_list(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    content_type: list[tuple[bytes, bytes]] = JSON_HEADERS,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": content_type + _header_list(headers),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, value: Any, headers: dict[str, str] | None = None
) -> None:
    await send_bytes(send, status, orjson.dumps(value), headers)


ErrorBody = Callable[[SeamlineError], dict[str, Any]]


async def send_error(
    send: Send,
    error: SeamlineError,
    headers: dict[str, str] | None = None,
    body: ErrorBody = SeamlineError.to_dict,
) -> None:
    """The error answer; ``body`` shapes it for the client's dialect (OpenAI's by default)."""
    await send_json(send, error.status, body(error), {**(headers or {}), **error.headers})


def sse_event(data: dict[str, Any], name: str | None = None) -> bytes:
    """One server-sent event; ``name`` for dialects whose events are typed."""
    payload = b"data: " + orjson.dumps(data) + b"\n\n"
    return payload if name is None else b"event: " + name.encode() + b"\n" + payload


async def start_stream(send: Send, headers: dict[str, str] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": SSE_HEADERS + _header_list(headers),
        }
    )


async def send_chunk(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client goes away (run as a task beside a streamed response)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def disconnect_watcher(receive: Receive) -> asyncio.Task[None]:
    return asyncio.create_task(wait_for_disconnect(receive))


def new_event(scope: Scope, route: str) -> CallEvent:
    """The event of an arriving call, in the caller's trace when it sent a traceparent."""
    event = CallEvent(route=route)
    parent = parse_traceparent(header(scope, b"traceparent"))
    if parent is not None:
        event.trace_id, event.parent_span_id = parent
    return event


async def discard(message: Any) -> None:
    """The ``send`` of a call the gateway makes itself: nobody waits for its answer."""
    return None


@contextlib.asynccontextmanager
async def failures_recorded(event: CallEvent) -> AsyncIterator[None]:
    """Around a call the gateway makes itself: what stopped it (an error, a cancellation)
    is recorded on its event, then raised on."""
    try:
        yield
    except asyncio.CancelledError:
        await answer_cancelled(discard, event, {}, response_started=True)
        raise
    except Exception as exc:
        await fail_call(discard, event, exc, {}, response_started=True)
        raise


def call_headers(event: CallEvent) -> dict[str, str]:
    """The headers every answer to a call carries: its request id under OpenAI's name, which
    the SDKs expose (``response._request_id``), and under seamline's own."""
    return {"x-request-id": event.request_id, "x-seamline-request-id": event.request_id}


async def fail_call(
    send: Send,
    event: CallEvent,
    exc: Exception,
    headers: dict[str, str],
    *,
    response_started: bool,
    body: ErrorBody = SeamlineError.to_dict,
) -> None:
    """Record why a call failed on its event and, if nothing was sent yet, answer with the
    OpenAI-style error. An unexpected exception is a bug: logged, and a 500 that names the
    request id, never a traceback."""
    if isinstance(exc, SeamlineError):
        refused = exc.status in (401, 403, 429) or isinstance(exc, ContentBlocked)
        status = STATUS_BLOCKED if refused else STATUS_ERROR
        event.fail(status, exc.status, exc.code, exc.message)
        if not response_started:
            await send_error(send, exc, headers, body)
        return
    log.exception("unexpected error in %s", event.route)
    event.fail(STATUS_ERROR, 500, "internal_error", repr(exc))
    if not response_started:
        internal = InternalError(f"internal error; request id {event.request_id}")
        await send_error(send, internal, headers, body)


async def answer_cancelled(
    send: Send,
    event: CallEvent,
    headers: dict[str, str],
    *,
    response_started: bool,
    body: ErrorBody = SeamlineError.to_dict,
) -> None:
    """A call whose task was cancelled: the server is stopping and the call outlived
    ``gateway.shutdown_grace_s`` (only uvicorn cancels a request's task; a client that goes
    away is noticed by the call itself). Recorded as cancelled; a caller still connected gets
    a 503 with Retry-After, which clients retry on another replica, instead of uvicorn's
    plain-text 500 and a traceback in the log. Meant to end the task: the cancellation is
    answered, not re-raised."""
    event.fail(STATUS_ERROR, 503, "cancelled", "the gateway shut down before the call finished")
    if not response_started:
        stopping = Unavailable(
            "the gateway is shutting down; retry the call",
            code="shutting_down",
            headers={"Retry-After": "1"},
        )
        await send_error(send, stopping, headers, body)
