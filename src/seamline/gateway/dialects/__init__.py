"""The wire formats clients speak to the gateway, around one request path.

The request path (``gateway/chat.py``) runs on OpenAI's chat format, the lingua franca the
providers already normalise to. A dialect translates a client's request into it on the way
in, and the answer, the stream and any error out of it on the way out, so that every
dialect gets the same auth, prompts, limits, budgets, routing, cache and one event per call
without a second copy of the path. OpenAI's chat dialect is the identity and passes the
upstream's bytes through untouched (the hot path pays nothing for the others).
"""

from __future__ import annotations

from typing import Any, Protocol

from seamline.core.errors import SeamlineError
from seamline.gateway.server.http import Scope


class StreamWriter(Protocol):
    """One streamed answer in a dialect: fed the upstream's chat chunks in order."""

    def chunk(self, chunk: dict[str, Any], raw: bytes | None) -> bytes:
        """The bytes to send for one chat chunk (``raw``: its SSE bytes as the upstream
        sent them, when it did); empty when nothing is due yet."""
        ...

    def end(self) -> bytes:
        """The bytes that close a stream that completed."""
        ...

    def fail(self, error: SeamlineError) -> bytes:
        """The bytes that close a stream cut by ``error`` after it started."""
        ...


class Dialect(Protocol):
    route: str  # the event's route

    def credentials(self, scope: Scope) -> str | None:
        """The API key as this dialect's clients send it."""
        ...

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as an OpenAI chat body; raises InvalidInput, naming the parameter,
        for what it cannot carry rather than dropping it."""
        ...

    def answer(self, completion: dict[str, Any], raw: bytes | None) -> bytes:
        """A chat.completion (``raw``: its bytes from the upstream, when unchanged) as this
        dialect's response body."""
        ...

    def writer(self, model: str, include_usage: bool) -> StreamWriter:
        """A writer for one streamed answer to a request for ``model``."""
        ...

    def error_body(self, error: SeamlineError) -> dict[str, Any]:
        """The error as this dialect's clients parse it (the status stays the error's)."""
        ...
