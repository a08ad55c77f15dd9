"""Slow clients against a real ``seamline serve``: request headers and bodies have deadlines,
and a worker serves a bounded number of connections (gateway/server/connections.py).

The deadlines are set to 1 s here so that each test takes seconds; a test allows several
times that before it calls a connection "held", and never asserts a measured duration.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.served import ServedGateway, serve
from tests.stub_upstream import StubUpstream

TIMEOUT_S = 1  # header_timeout_s and body_timeout_s of the served gateway
HELD_S = 15.0  # a connection still open this long after its deadline is held for good
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubUpstream]:
    upstream = StubUpstream("up").start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, stub: StubUpstream
) -> Iterator[ServedGateway]:
    served = serve(
        tmp_path_factory.mktemp("slow"),
        f'[[models]]\nname = "m"\nbase_url = "{stub.base_url}"\n'
        f"[gateway]\nembedded_models = false\n"
        f"header_timeout_s = {TIMEOUT_S}\nbody_timeout_s = {TIMEOUT_S}\n",
    )
    yield served
    served.stop()


def connect(gateway: ServedGateway) -> socket.socket:
    host, port = gateway.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)))


def until_closed(sock: socket.socket, drip: bytes = b"") -> bytes | None:
    """Everything the server sends until it closes the connection, while the client sends
    ``drip`` every 0.2 s (a trickle); None if the connection is still open after HELD_S."""
    sock.settimeout(0.2)
    received = b""
    end = time.monotonic() + HELD_S
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if drip:
                try:
                    sock.sendall(drip)
                except OSError:  # the server closed its end under the trickle
                    return received
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def error_of(response: bytes) -> tuple[int, str]:
    """The status and the OpenAI error code of a raw HTTP/1.1 response."""
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]["code"]


def test_a_connection_that_sends_nothing_is_closed(gateway: ServedGateway) -> None:
    with connect(gateway) as sock:
        assert until_closed(sock) == b""


def test_request_headers_trickled_byte_by_byte_get_408_and_the_connection_closes(
    gateway: ServedGateway,
) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        response = until_closed(sock, drip=b"a")
    assert response is not None, "a slow-header client held its connection"
    assert error_of(response) == (408, "header_timeout")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/artefacts"])
def test_a_trickled_request_body_gets_408_on_the_gateway_and_the_registry_api(
    gateway: ServedGateway, path: str
) -> None:
    with connect(gateway) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {gateway.key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode()
        )
        response = until_closed(sock, drip=b" " * 2)  # 10 bytes a second
    assert response is not None, "a client trickling its body held its connection"
    assert error_of(response) == (408, "body_timeout")


def test_a_body_still_trickling_after_the_answer_is_cut_off(gateway: ServedGateway) -> None:
    # No key: the registry API answers 401 before it reads the body; the trickle that
    # follows must not keep the connection (uvicorn reads on to reach the next request).
    with connect(gateway) as sock:
        sock.sendall(
            b"POST /api/v1/artefacts HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        response = until_closed(sock, drip=b" " * 2)
    assert response is not None, "a client trickling its body held its connection"
    assert response.startswith(b"HTTP/1.1 401")


def test_a_keep_alive_connection_outlives_the_header_deadline(gateway: ServedGateway) -> None:
    # The header deadline runs per request, from its first byte: a connection reused for
    # longer than the deadline, with pauses under uvicorn's keep-alive, is not cut.
    host, port = gateway.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read()
        first = connection.sock
        for _ in range(3):
            time.sleep(TIMEOUT_S * 0.6)
            connection.request("GET", "/healthz")
            assert connection.getresponse().read()
            assert connection.sock is first  # the same connection throughout
    finally:
        connection.close()


@pytest.mark.parametrize("stream", [False, True])
def test_a_call_slower_than_the_deadlines_is_answered(
    gateway: ServedGateway, stub: StubUpstream, stream: bool
) -> None:
    # The deadlines bound the client's sending, not the server's answering.
    stub.faults.latency_s = TIMEOUT_S * 1.5
    try:
        reply = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {gateway.key}"},
            json={**CHAT, "stream": stream},
            timeout=30,
        )
    finally:
        stub.faults.latency_s = 0.0
    assert reply.status_code == 200
    if stream:
        assert reply.text.rstrip().endswith("data: [DONE]")
    else:
        assert reply.json()["choices"][0]["message"]["content"].endswith("echo: hi")


def test_connections_over_the_cap_get_503_until_one_closes(tmp_path: Path) -> None:
    served = serve(tmp_path, "[gateway]\nembedded_models = false\nmax_connections = 2\n")
    host, port = served.url.removeprefix("http://").split(":")
    held = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(2)]
    try:
        for connection in held:  # answered, then idle in keep-alive: both count
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert response.status == 200 and response.read()
        over = httpx.get(f"{served.url}/healthz")
        assert over.status_code == 503
        assert over.json()["error"]["code"] == "server_overloaded"
        assert over.headers["retry-after"] == "1"
        for connection in held:
            connection.close()
        deadline = time.monotonic() + HELD_S
        while httpx.get(f"{served.url}/healthz").status_code != 200:
            assert time.monotonic() < deadline, "closed connections never freed their slots"
            time.sleep(0.1)
    finally:
        for connection in held:
            connection.close()
        served.stop()
