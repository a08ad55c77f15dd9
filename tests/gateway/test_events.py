"""Every accepted call leaves exactly one event: through outages and shutdowns."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from seamline.store import Database
from tests.gateway.conftest import RunningGateway
from tests.served import serve
from tests.stub_upstream import StubUpstream

HELLO = [{"role": "user", "content": "hi"}]
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=1"


def test_calls_during_a_database_outage_are_stored_once_it_returns(
    gateway: RunningGateway,
) -> None:
    writer = gateway.app.gateway.writer
    healthy = writer.db
    client = gateway.client()
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    gateway.events(1)
    writer.db = Database(UNREACHABLE)
    for _ in range(10):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert writer.flush()
    assert writer.spill_file.exists()
    writer.db = healthy
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    rows = gateway.events(12)
    assert len(rows) == 12 and len({r["request_id"] for r in rows}) == 12


def test_sigterm_under_load_leaves_one_event_per_answered_call(tmp_path: Path) -> None:
    stub = StubUpstream("slow").start()
    stub.faults.latency_s = 0.3
    server = serve(tmp_path, f'[[models]]\nname = "m"\nbase_url = "{stub.base_url}"\n')
    try:

        def call(i: int) -> int | None:
            time.sleep(i * 0.01)
            try:
                return httpx.post(
                    f"{server.url}/v1/chat/completions",
                    timeout=30,
                    headers={"Authorization": f"Bearer {server.key}"},
                    json={"model": "m", "messages": HELLO, "stream": i % 2 == 0},
                ).status_code
            except httpx.HTTPError:
                return None  # refused once shutdown began: never accepted

        with ThreadPoolExecutor(40) as pool:
            futures = [pool.submit(call, i) for i in range(80)]
            deadline = time.monotonic() + 20
            while len(stub.requests) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)  # under load: at least 20 calls are with the upstream
            status = server.stop()
            answered = [f.result() for f in futures]
        # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM.
        assert status in (0, -signal.SIGTERM)
    finally:
        server.stop()
        stub.stop()
    accepted = [s for s in answered if s is not None]
    assert len(accepted) >= 20
    engine = create_engine(f"sqlite:///{server.home / 'seamline.db'}")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT request_id FROM events")).scalars().all()
    engine.dispose()
    assert len(stored) == len(accepted) == len(set(stored))


def test_sigterm_with_a_call_that_never_ends_exits_after_the_grace_and_records_it(
    tmp_path: Path,
) -> None:
    # An upstream that takes the request and never answers.
    with socket.create_server(("127.0.0.1", 0)) as hung:
        hung.settimeout(20)
        base_url = f"http://127.0.0.1:{hung.getsockname()[1]}/v1"
        model = f'[[models]]\nname = "m"\nbase_url = "{base_url}"\n'
        server = serve(tmp_path, "[gateway]\nshutdown_grace_s = 1\n\n" + model)

        def call() -> int | None:
            try:
                return httpx.post(
                    f"{server.url}/v1/chat/completions",
                    timeout=60,
                    headers={"Authorization": f"Bearer {server.key}"},
                    json={"model": "m", "messages": HELLO},
                ).status_code
            except httpx.HTTPError:
                return None

        try:
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(call)
                connection, _ = hung.accept()  # the call is with the upstream
                # Without a bounded grace uvicorn waits for the call for ever: stop() raises.
                status = server.stop()
                answered = pending.result()
                connection.close()
        finally:
            server.stop()
    assert status in (0, -signal.SIGTERM)
    assert answered == 503  # retryable elsewhere, not uvicorn's plain-text 500
    engine = create_engine(f"sqlite:///{server.home / 'seamline.db'}")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT http_status, error_type FROM events")).all()
    engine.dispose()
    assert [tuple(row) for row in stored] == [(503, "cancelled")]
