"""Admission to the registry API: the API key is checked and the body's size bounded before
any of the body is read.

FastAPI reads and parses a request's body before it resolves the route's dependencies, so a
key checked in a dependency is checked after the body has been buffered and parsed: a caller
with no key could make the server hold and parse any body it sent (a 50 MB body without a key
raised the server's peak memory by about 150 MB). This pure ASGI middleware (not Starlette's
``BaseHTTPMiddleware``, which would wrap every request in a task and stream objects) runs
first: a declared ``Content-Length`` over the cap is refused unread, the key is
authenticated from the headers, and only then is the body read, counting bytes so that a
chunked body with no ``Content-Length`` is refused as soon as it passes the cap. The cap is
the gateway's (``gateway.max_body_bytes``), so ``seamline serve`` has one limit everywhere.

The actor it authenticates is left in the request's state for :func:`seamline.api.deps.get_actor`,
so a key is authenticated once per request.
"""

from __future__ import annotations

from collections import deque

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seamline.api.errors import seamline_error_response
from seamline.core.errors import AuthenticationFailed, PayloadTooLarge, SeamlineError
from seamline.registry import Actor, Registry

ACTOR_STATE = "actor"  # the key under which the authenticated actor sits in scope["state"]


class Admission:
    """Refuse oversized bodies (413) and, under ``keyed_prefix``, missing or wrong keys
    (401) before reading the body; then hand the app the body it read.

    Adds one header scan per request, plus the key's database lookup under the keyed prefix
    (which the routes did anyway, after parsing the body).
    """

    def __init__(
        self, app: ASGIApp, *, registry: Registry, max_body_bytes: int, keyed_prefix: str
    ) -> None:
        self.app = app
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.keyed_prefix = keyed_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                raise self._too_large()
            if _under(scope["path"], self.keyed_prefix):
                scope.setdefault("state", {})[ACTOR_STATE] = await self._authenticate(scope)
            body = await self._read_body(receive)
        except SeamlineError as exc:
            await seamline_error_response(exc)(scope, receive, send)
            return
        if body is None:  # the client went away mid-body: there is no one to answer
            return
        await self.app(scope, _replay(body, receive), send)

    async def _authenticate(self, scope: Scope) -> Actor:
        key = _bearer_key(scope)
        if key is None:
            raise AuthenticationFailed(
                "missing API key: send 'Authorization: Bearer sk-seam-...'", code="missing_api_key"
            )
        # The lookup reads the database: off the event loop, in the pool sync routes use.
        return await run_in_threadpool(self.registry.authenticate, key)

    async def _read_body(self, receive: Receive) -> deque[Message] | None:
        """The body's messages, refused once their bytes pass the cap; None on disconnect."""
        messages: deque[Message] = deque()
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                raise self._too_large()
            messages.append(message)
            if not message.get("more_body", False):
                return messages

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body over {self.max_body_bytes} bytes")


def _replay(body: deque[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the client's own
    messages (a disconnect, which streaming responses listen for)."""

    async def replay() -> Message:
        return body.popleft() if body else await receive()

    return replay


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _content_length(scope: Scope) -> int | None:
    # The HTTP server has already refused a malformed Content-Length; anything it let
    # through that is not a number is left to the byte count.
    value = _header(scope, b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _bearer_key(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
