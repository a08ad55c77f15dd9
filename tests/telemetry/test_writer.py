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
    bad = CallEvent(route="/test", request_id="req_" + "x" * 60)  # over the column's 40
    for event in [good[0], bad, *good[1:]]:
        writer.submit(event)
    writer.close()
    with db.read() as conn:
        stored = set(conn.execute(select(events.c.request_id)).scalars())
        users = set(conn.execute(select(events.c.user_id)).scalars())
    assert {e.request_id for e in good} <= stored
    assert users >= {"nulin the middle"}
    if db.is_postgres:  # SQLite does not enforce VARCHAR lengths
        assert bad.request_id not in stored
        assert bad.request_id in writer.rejected_file.read_text()
