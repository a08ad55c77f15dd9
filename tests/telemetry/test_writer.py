from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from seamline.store import Database
from seamline.store.migrate import upgrade
from seamline.store.schema import events
from seamline.telemetry.event import CallEvent
from seamline.telemetry.writer import EventWriter
from tests.pg_private import PrivatePostgres

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=1"
# The outside review's load: at this rate the writer never retried a returning database.
CALLS_PER_S = 40
# The review's target is 5 s from the database answering to the spill stored; the poll waits
# twice that so a busy two-core machine does not fail it, and stops as soon as it is met.
STORED_DEADLINE_S = 10.0


def _count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def _stored(db: Database) -> set[str]:
    with db.read() as conn:
        return set(conn.execute(select(events.c.request_id)).scalars())


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test's own, with the schema applied, that it may stop."""
    server = PrivatePostgres.create()
    if server is None:
        missing = "PostgreSQL's initdb and pg_ctl (and, as root, runuser and a postgres user)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {missing}")
        pytest.skip(f"no private PostgreSQL: needs {missing}")
    try:
        server.start()
        db = Database(server.url)
        upgrade(db)
        db.dispose()
        yield server
    finally:
        server.destroy()


class SteadyTraffic:
    """A thread submitting one event every 1/rate seconds until stopped, as calls would."""

    def __init__(self, writer: EventWriter, rate: float) -> None:
        self.writer = writer
        self.interval = 1 / rate
        self.submitted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-traffic")

    def __enter__(self) -> SteadyTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            event = CallEvent(route="/test")
            self.writer.submit(event)
            self.submitted.append(event.request_id)


def test_batches_reach_the_store(db: Database, tmp_path: Path) -> None:
    writer = EventWriter(db, tmp_path / "spill.jsonl", batch_size=50)
    writer.start()
    for i in range(120):
        writer.submit(CallEvent(route="/test", prompt_tokens=i))
    assert writer.flush()
    writer.close()
    assert _count(db) == 120


def test_events_spill_while_the_database_is_down_and_replay_once_back(
    db: Database, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    writer = EventWriter(Database(UNREACHABLE), spill)
    writer.start()
    submitted = [CallEvent(route="/test") for _ in range(30)]
    for event in submitted:
        writer.submit(event)
    assert writer.flush()
    assert len(spill.read_text().splitlines()) == 30
    writer.db = db  # the database is back
    late = CallEvent(route="/test")
    writer.submit(late)
    writer.close()
    assert not spill.exists()
    with db.read() as conn:
        stored = set(conn.execute(select(events.c.request_id)).scalars())
    assert stored == {e.request_id for e in [*submitted, late]}


def test_replaying_twice_stores_each_event_once(db: Database, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    down = EventWriter(Database(UNREACHABLE), spill)
    down.start()
    for _ in range(5):
        down.submit(CallEvent(route="/test"))
    down.close()
    copy = spill.read_text()
    up = EventWriter(db, spill)
    up.start()
    up.close()
    spill.write_text(copy)  # as if a crash came between the commit and removing the file
    again = EventWriter(db, spill)
    again.start()
    again.close()
    assert _count(db) == 5 and not spill.exists()


def test_close_drains_the_queue(db: Database, tmp_path: Path) -> None:
    writer = EventWriter(db, tmp_path / "spill.jsonl", flush_interval=5)
    writer.start()
    for _ in range(10):
        writer.submit(CallEvent(route="/test"))
    writer.close()
    assert _count(db) == 10


def test_a_torn_spill_line_is_set_aside_and_the_rest_replayed(db: Database, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    down = EventWriter(Database(UNREACHABLE), spill)
    down.start()
    for _ in range(3):
        down.submit(CallEvent(route="/test"))
    down.close()
    with spill.open("a") as handle:
        handle.write('{"request_id": "req_torn", "ti')  # the crash cut this line short
    up = EventWriter(db, spill)
    up.start()
    up.close()
    assert _count(db) == 3 and not spill.exists()
    assert "req_torn" in up.rejected_file.read_text()


def test_rows_the_database_refuses_do_not_block_the_others(db: Database, tmp_path: Path) -> None:
    writer = EventWriter(db, tmp_path / "spill.jsonl")
    writer.start()
    good = [CallEvent(route="/test", user_id="nul\x00in the middle") for _ in range(3)]
    # Over PostgreSQL's 4-byte integer (text is cut to its column's width, so cannot be).
    bad = CallEvent(route="/test", prompt_tokens=2**31)
    for event in [good[0], bad, *good[1:]]:
        writer.submit(event)
    writer.close()
    with db.read() as conn:
        stored = set(conn.execute(select(events.c.request_id)).scalars())
        users = set(conn.execute(select(events.c.user_id)).scalars())
    assert {e.request_id for e in good} <= stored
    assert users >= {"nulin the middle"}
    if db.is_postgres:  # SQLite stores any integer
        assert bad.request_id not in stored
        assert bad.request_id in writer.rejected_file.read_text()


def test_a_database_back_from_an_outage_gets_the_spill_while_calls_keep_coming(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    db = Database(private_postgres.url)
    writer = EventWriter(db, spill)
    writer.start()
    try:
        private_postgres.stop()
        with SteadyTraffic(writer, CALLS_PER_S) as traffic:
            deadline = time.monotonic() + STORED_DEADLINE_S
            while not spill.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert spill.exists(), "events submitted during the outage are spilled"
            private_postgres.start()
            during_outage = set(traffic.submitted)
            deadline = time.monotonic() + STORED_DEADLINE_S
            while not during_outage <= _stored(db) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert during_outage <= _stored(db), "spill not stored while calls keep coming"
            assert traffic.running
        writer.close()
        assert _stored(db) == set(traffic.submitted) and _count(db) == len(traffic.submitted)
        assert not spill.exists()
    finally:
        writer.close()
        db.dispose()


def test_a_torn_spill_line_is_set_aside_once_and_swallows_no_later_event(
    db: Database, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    before = CallEvent(route="/test")
    crashed = EventWriter(Database(UNREACHABLE), spill)
    crashed.start()
    crashed.submit(before)
    crashed.close()
    torn = '{"request_id": "req_torn", "ti'
    with spill.open("a") as handle:
        handle.write(torn)  # the crash cut this line short
    restarted = EventWriter(Database(UNREACHABLE), spill)  # the database is still down
    restarted.start()
    after = [CallEvent(route="/test") for _ in range(3)]
    for event in after:
        restarted.submit(event)
    restarted.close()
    up = EventWriter(db, spill)
    up.start()
    up.close()
    assert _stored(db) == {e.request_id for e in [before, *after]} and not spill.exists()
    assert up.rejected_file.read_text() == torn + "\n"


def test_rows_read_back_as_the_events_were_whatever_their_text(
    db: Database, tmp_path: Path
) -> None:
    """The hand-written INSERT (telemetry/event_insert.py) stores what SQLAlchemy's would:
    text cut to its column's width and without NULs, JSON as JSON (None as JSON null), the
    time as given; a request_id already stored is skipped."""
    when = datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)
    full = CallEvent(
        time=when,
        route="/v1/chat/completions",
        user_id="u\x00" + "x" * 300,  # over the 200-character column, with a NUL
        model_requested="modèle-😀",
        prompt_version=3,
        tokens_estimated=True,
        cost_usd=0,
        ttft_ms=1.5,
        chunk_ids=["kb-1", "kb-2"],
        guard_actions=[],
        safety_pass=False,
        error_message="cut\x00short",
        stream=True,
        request_content=[{"role": "user", "content": "h\x00i", "n": 2**70}],
        response_content={"role": "assistant", "content": None, 1: "key"},
    )
    sparse = CallEvent(time=when, route="/v1/embeddings")
    again = CallEvent(request_id=full.request_id, time=when, route="/again")
    writer = EventWriter(db, tmp_path / "spill.jsonl")
    writer.start()
    for event in (full, sparse, again):
        writer.submit(event)
    writer.close()
    with db.read() as conn:
        rows = {r.request_id: r._asdict() for r in conn.execute(select(events))}
    assert set(rows) == {full.request_id, sparse.request_id}
    for event in (full, sparse):
        row = rows[event.request_id]
        stored_time = row.pop("time")
        assert stored_time == (when if db.is_postgres else when.replace(tzinfo=None))
        expected = {k: v for k, v in event.to_row().items() if k != "time"}
        expected["user_id"] = "u" + "x" * 198  # cut to 200, then the NUL dropped
        expected["error_message"] = "cutshort"
        expected["request_content"] = [{"role": "user", "content": "hi", "n": 2**70}]
        expected["response_content"] = {"role": "assistant", "content": None, "1": "key"}
        if event is sparse:
            expected.update(user_id=None, error_message=None)
            expected.update(request_content=None, response_content=None)
        assert {k: row[k] for k in expected} == expected
    if db.is_sqlite:  # JSON None is the JSON text null, as SQLAlchemy's JSON type stores it
        with db.read() as conn:
            nulls = conn.exec_driver_sql(
                "SELECT chunk_ids, guard_actions IS NULL FROM events WHERE request_id = ?",
                (sparse.request_id,),
            ).one()
        assert tuple(nulls) == ("null", 0)


def test_flush_returns_once_stored_without_waiting_out_the_flush_interval(
    db: Database, tmp_path: Path
) -> None:
    writer = EventWriter(db, tmp_path / "spill.jsonl", flush_interval=30)
    writer.start()
    try:
        writer.flush()  # the thread is waiting for a batch to gather
        started = time.monotonic()
        writer.submit(CallEvent(route="/test"))
        assert writer.flush(10)
        assert time.monotonic() - started < 5
        assert _count(db) == 1
    finally:
        writer.close()
    assert writer.flush(0.1) and _count(db) == 1  # a closed writer has nothing pending
