"""Every accepted call leaves exactly one event: through outages and shutdowns."""

from __future__ import annotations

import signal
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
