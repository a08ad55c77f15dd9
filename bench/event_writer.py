"""Event writer: the CPU it spends per event, against SQLAlchemy Core inserting the same rows.

The events are the size ``bench/gateway_overhead.py`` leaves (its prompt rendered: a system
message with a 500-character context, the question, a short answer, every attribution field
set). Measured in one run, in alternating rounds, on a fresh database each:

* SQLAlchemy Core: ``insert(events).on_conflict_do_nothing()`` with rows as dicts
  (``CallEvent.to_row`` without NULs), batches of 100 in ``Database.write`` transactions: how
  the writer stored events before ``telemetry/event_insert.py``, the baseline;
* insert: ``insert_events`` alone, the same batches;
* writer: ``EventWriter`` as the gateway runs it, events submitted 16 at a time every 10 ms
  (about 1,600 calls a second), then flushed; process CPU less that of the submitting loop
  left idle, so the figure is the writer's whole cost to the server.

The submitting thread sleeps between bursts here, so the GIL handoffs that a busy event loop
pays for (sqlite3 lets go of the GIL at every statement step) do not show: for those, run
``bench/profile_gateway.py`` against ``seamline serve``.

Run: ``.venv/bin/python -m bench.event_writer [--events 5000] [--rounds 3]
[--database-url postgresql://...]`` (default: SQLite in a temporary folder; on PostgreSQL the
run makes a schema of its own and drops it at the end, so it leaves the database as it was).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bench.gateway_overhead import VARIABLES
from seamline.store import Database
from seamline.store.migrate import upgrade
from seamline.store.schema import events
from seamline.telemetry.event import CallEvent, without_nul
from seamline.telemetry.event_insert import insert_events
from seamline.telemetry.writer import EventWriter

BATCH = 100
BURST, BURST_EVERY_S = 16, 0.01


def gateway_event() -> CallEvent:
    event = CallEvent(
        project_id=1,
        project="default",
        api_key_id="key_0123456789abcdef",
        user_id="bench-user",
        route="/v1/chat/completions",
        prompt_name="bench",
        prompt_version=1,
        prompt_alias="production",
        arm="control",
        model_requested="prompt:bench@production",
        model_used="bench-model",
        provider="openai",
        replica="bench-model",
        attempts=1,
        prompt_tokens=160,
        completion_tokens=9,
        cost_usd=0.0000294,
        upstream_ms=1.2,
        finish_reason="stop",
    )
    event.request_content = [
        {"role": "system", "content": "Answer from the context only.\n\n" + VARIABLES["context"]},
        {"role": "user", "content": VARIABLES["question"]},
    ]
    event.response_content = {"role": "assistant", "content": "The answer is 42."}
    event.finish()
    return event


def core_insert(db: Database, batch: list[CallEvent]) -> None:
    insert = postgres_insert if db.is_postgres else sqlite_insert
    statement = insert(events).on_conflict_do_nothing(index_elements=["request_id"])
    with db.write() as conn:
        conn.execute(statement, [without_nul(event.to_row()) for event in batch])


def hand_insert(db: Database, batch: list[CallEvent]) -> None:
    with db.write() as conn:
        insert_events(conn, batch, postgres=db.is_postgres)


def batches_cpu(db: Database, store: Callable[[Database, list[CallEvent]], None], n: int) -> float:
    """CPU µs per event to store ``n`` events in batches."""
    batch = [gateway_event() for _ in range(n)]
    started = time.process_time()
    for i in range(0, n, BATCH):
        store(db, batch[i : i + BATCH])
    return (time.process_time() - started) * 1e6 / n


def writer_cpu(db: Database, folder: Path, n: int, idle_s: float) -> float:
    """CPU µs per event of an EventWriter fed as a busy gateway feeds it."""
    writer = EventWriter(db, folder / "spill.jsonl")
    writer.start()
    batch = [gateway_event() for _ in range(n)]
    started = time.process_time()
    for i in range(0, n, BURST):
        for event in batch[i : i + BURST]:
            writer.submit(event)
        time.sleep(BURST_EVERY_S)
    assert writer.flush(120), "the writer did not catch up"
    spent = time.process_time() - started - idle_s
    writer.close()
    return spent * 1e6 / n


def idle_cpu(n: int) -> float:
    """CPU seconds the submitting loop spends sleeping, without the writer."""
    started = time.process_time()
    for _ in range(0, n, BURST):
        time.sleep(BURST_EVERY_S)
    return time.process_time() - started


@contextmanager
def databases(url: str | None) -> Iterator[Callable[[str], Database]]:
    """Fresh, migrated, empty databases by name: SQLite files in a temporary folder, or (with
    ``url``) PostgreSQL in a schema of this run's own, dropped at the end."""
    with tempfile.TemporaryDirectory() as folder:
        if url is None:
            yield lambda name: _migrated(Database(f"sqlite:///{Path(folder) / name}.db"))
            return
        schema = f"bench_event_writer_{secrets.token_hex(4)}"
        admin = create_engine(Database(url).url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield lambda _name: _migrated(Database(url, schema=schema))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _migrated(db: Database) -> Database:
    upgrade(db)
    with db.write() as conn:
        conn.execute(events.delete())
    return db


def stored(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    idle = idle_cpu(args.events)
    figures: dict[str, list[float]] = {"core": [], "insert": [], "writer": []}
    with databases(args.database_url) as fresh, tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for round_number in range(args.rounds):
            for label, measure in (
                ("core", lambda db: batches_cpu(db, core_insert, args.events)),
                ("insert", lambda db: batches_cpu(db, hand_insert, args.events)),
                ("writer", lambda db: writer_cpu(db, folder, args.events, idle)),
            ):
                db = fresh(f"{label}-{round_number}")
                figures[label].append(measure(db))
                assert stored(db) == args.events, f"{label}: not every event was stored"
                db.dispose()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    core = statistics.median(figures["core"])
    print(f"event writer, {backend}, {args.events} events x {args.rounds} rounds (median)")
    for label, title in (
        ("core", "SQLAlchemy Core insert (baseline)"),
        ("insert", "insert_events"),
        ("writer", "EventWriter, submit to stored"),
    ):
        value = statistics.median(figures[label])
        print(f"  {title:36} {value:7.1f} µs CPU/event   {value / core:5.2f}x baseline")


if __name__ == "__main__":
    main()
