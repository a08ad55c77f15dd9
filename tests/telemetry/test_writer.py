from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from seamline.store import Database
from seamline.store.schema import events
from seamline.telemetry.event import CallEvent
from seamline.telemetry.writer import EventWriter

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=1"


def _count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


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
