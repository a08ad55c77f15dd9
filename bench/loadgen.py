"""A minimal HTTP/1.1 keep-alive load generator on asyncio streams.

Written here because the load generator shares the machine's 2 cores with the server: an
httpx client spends ~2.5 ms CPU per request (FACTS.md) and would measure itself, not the
server. This one sends fixed requests and reads a Content-Length or chunked body; for a
streamed answer it also notes when the first body bytes arrived (time to first byte).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_byte_ms: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def build_request(
    host: str, port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader, started: float, result: LoadResult) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    first = True
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
        await reader.readexactly(size + 2)
        if first and size:
            result.first_byte_ms.append((time.perf_counter() - started) * 1000)
            first = False
        if size == 0:
            return status


async def _worker(
    host: str,
    port: int,
    requests: Iterator[bytes],
    stop_at: float,
    limit: int | None,
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at and (limit is None or result.requests < limit):
            started = time.perf_counter()
            writer.write(next(requests))
            status = await _read_response(reader, started, result)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if status != 200:
                result.errors += 1
    finally:
        writer.close()


def run_load(
    host: str,
    port: int,
    request: bytes | Sequence[bytes],
    *,
    concurrency: int,
    seconds: float,
    limit: int | None = None,
) -> LoadResult:
    """``concurrency`` connections sending ``request`` back to back for ``seconds`` (or
    until ``limit`` requests in all); given several requests, the connections take them in
    turn, each the next one not yet sent."""
    result = LoadResult()
    requests = itertools.cycle([request] if isinstance(request, bytes) else request)

    async def main() -> None:
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(
            *(_worker(host, port, requests, stop_at, limit, result) for _ in range(concurrency))
        )
        result.seconds = time.perf_counter() - started

    asyncio.run(main())
    return result


def get(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    return build_request(host, port, "GET", path, headers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
