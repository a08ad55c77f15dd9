"""The gateway's HTTP/1.1 connections: deadlines for slow clients and a cap per worker.

uvicorn bounds only the idle time between two requests of a connection
(``timeout_keep_alive``). A client that sends its request headers or its body slowly holds a
connection (a socket, a parser, once the headers are in an application task) for as long as
it keeps trickling, and a few hundred of them starve a worker: the slowloris attack. The
protocol here is uvicorn's httptools protocol with three additions, made at the connection so
that both faces (the raw ``/v1`` routes and the FastAPI app) are covered, and so is a body
still trickling after the application answered without reading it (a 401, say):

* the request headers must be complete within ``header_timeout_s`` of the connection opening
  (first request) or of their first byte (later requests: the wait before that byte is
  uvicorn's keep-alive timeout); late, the client gets a 408 and the connection closes (a
  connection that sent nothing is closed without a word: an unasked-for 408 could be read by
  a pooling client as the answer to its next request);
* the whole body must arrive within ``body_timeout_s`` of the headers' end; late, a 408 if
  nothing was answered yet, else the connection closes. A deadline on the whole body, not on
  the gap between two reads as nginx's ``client_body_timeout`` is, because a trickle of a few
  bytes a second never leaves a gap;
* a worker serves at most ``max_connections`` connections; one over the cap is answered 503
  with ``Retry-After`` (OpenAI's SDKs retry a 503 with backoff) and closed.

Time the server itself spends not reading (a pipelined request waiting for the one before it,
an application that has not asked for the body yet) never counts against the client: a
deadline that falls then is pushed back, so streaming and keep-alive behave as in uvicorn.

Cost on the hot path: ~0.6 us CPU per request (two reads of the loop's clock; one timer per
connection is moved lazily, see ``_expect``), nil against the ~0.6 ms of a pass-through call
(``bench/gateway_overhead.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from http import HTTPStatus
from typing import Any, Literal, cast

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from seamline.core.errors import SeamlineError, Unavailable
from seamline.core.settings import GatewayConfig
from seamline.gateway.server.http import Receive, Scope, Send, send_error

log = logging.getLogger("seamline.gateway")

# How long a client over the cap is asked to wait: long enough for calls in flight to free
# slots on an LLM gateway, short enough that a burst does not turn into an outage.
RETRY_AFTER_S = "1"


class RequestTimeout(SeamlineError):
    """The client did not send its request in time (a slow or stalled client)."""

    status = 408
    default_code = "request_timeout"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a connection cap.

    uvicorn builds one per connection; ``guarded_protocol`` binds the settings.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout_s: float,
        body_timeout_s: float,
        max_connections: int,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.max_connections = max_connections
        self._awaiting: Literal["headers", "body"] | None = None  # what the client owes
        self._deadline = 0.0  # loop time by which it must have arrived
        self._timer: asyncio.TimerHandle | None = None
        self._request_begun = False  # bytes of a request whose headers are not complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            # Decided once per connection, when it is accepted: every request on it is
            # refused and the first refusal closes it.
            self.app = self._over_capacity
        self._expect("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._awaiting = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._awaiting is None:  # a later request: its deadline runs from its first byte
            self._expect("headers")

    def on_headers_complete(self) -> None:
        self._request_begun = False
        super().on_headers_complete()
        self._expect("body")

    def on_message_complete(self) -> None:
        self._awaiting = None
        super().on_message_complete()

    def _expect(self, what: Literal["headers", "body"]) -> None:
        """Start the client's deadline for ``what``.

        One timer per connection, moved only when it would fire after the new deadline; when
        it fires early it re-arms itself for the deadline in force. So a busy keep-alive
        connection costs a timer operation every few seconds rather than four per request
        (a call_later and a cancel for each deadline: 7 us a request with uvloop on the
        2-core bench machine, where the deadlines as written cost 0.6 us).
        """
        self._awaiting = what
        timeout = self.header_timeout_s if what == "headers" else self.body_timeout_s
        self._deadline = self.loop.time() + timeout
        if self._timer is not None and self._timer.when() <= self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._awaiting is None or self.transport.is_closing():
            return  # nothing owed now: the next _expect arms a timer again
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
        elif self._awaiting == "headers":
            self._headers_late()
        else:
            self._body_late()

    def _headers_late(self) -> None:
        if self.flow.read_paused or (self.cycle is not None and not self.cycle.response_complete):
            # A pipelined request behind one still in flight: we are the slow side.
            self._expect("headers")
            return
        if not self._request_begun:
            self.transport.close()
            return
        self._refuse(
            RequestTimeout(
                f"the request headers did not arrive within {self.header_timeout_s:g} s",
                code="header_timeout",
            )
        )

    def _body_late(self) -> None:
        cycle = self.cycle
        if self.flow.read_paused or self.pipeline or cycle.waiting_for_100_continue:
            # The application has not asked for (more of) the body yet, or the request is
            # pipelined behind one still being answered: the wait is ours.
            self._expect("body")
            return
        if cycle.response_started:
            # An answer is already on the wire (e.g. a 401 sent before the body was read):
            # nothing more can be said on this connection, so it just closes.
            log.info(
                "closed %s: request body still arriving after %g s",
                self.client,
                self.body_timeout_s,
            )
            self.transport.close()
            return
        # The application waits in receive(): it now sees http.disconnect, and whatever it
        # sends is dropped, so the 408 below is the only answer.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(
            RequestTimeout(
                f"the request body did not arrive within {self.body_timeout_s:g} s",
                code="body_timeout",
            )
        )

    def _refuse(self, error: SeamlineError) -> None:
        """Answer ``error`` in the OpenAI error shape and close, written straight to the
        socket: the request never reached the application, or never reached it whole."""
        log.info("closed %s: %s", self.client, error.message)
        body = orjson.dumps(error.to_dict())
        status = HTTPStatus(error.status)
        head = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    async def _over_capacity(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = Unavailable(
            f"this gateway worker is at its limit of {self.max_connections} connections; "
            "retry shortly",
            code="server_overloaded",
            headers={"retry-after": RETRY_AFTER_S, "connection": "close"},
        )
        log.warning("refused %s: %s", self.client, error.message)
        await send_error(send, error)


def guarded_protocol(config: GatewayConfig) -> type[asyncio.Protocol]:
    """The protocol to pass as uvicorn's ``http=``, bound to ``config``'s limits.

    A ``partial`` rather than a subclass made on the fly: uvicorn pickles its config into
    each spawned worker, and a partial of a module-level class pickles (a class made at run
    time does not). uvicorn only ever calls the protocol class with keyword arguments, which
    is all the cast vouches for.
    """
    return cast(
        "type[asyncio.Protocol]",
        functools.partial(
            GuardedHttpToolsProtocol,
            header_timeout_s=config.header_timeout_s,
            body_timeout_s=config.body_timeout_s,
            max_connections=config.max_connections,
        ),
    )
