"""The event writer: batches events into the store off the request path, and never loses one.

Request handlers hand events to :meth:`EventWriter.submit` (a lock-free queue put, a few
microseconds). A background thread writes them in batches. When the database cannot be
reached, a batch is appended to a local spill file (JSON lines, fsync'd) instead; once the
database answers again the spill file is replayed before new events. Inserts ignore a
``request_id`` already stored, so a replay interrupted half-way can simply run again.
:meth:`close` drains the queue, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from seamline.core.errors import Unavailable
from seamline.store import Database
from seamline.store.schema import events
from seamline.telemetry.event import CallEvent

log = logging.getLogger("seamline.events")

BATCH_SIZE = 500
FLUSH_INTERVAL_S = 0.2
RETRY_INTERVAL_S = 1.0
_STOP = object()


class EventWriter:
    def __init__(
        self,
        db: Database,
        spill_file: Path,
        *,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.db = db
        self.spill_file = spill_file
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="seamline-events", daemon=True)
            self._thread.start()

    def submit(self, event: CallEvent) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(event.to_row())

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted event is stored or spilled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._collect()
            if stopping:  # the last chance: try the database whatever the retry timer says
                self._retry_at = 0.0
            if batch or stopping:
                self._write(batch)
            elif self.spill_file.exists() and time.monotonic() >= self._retry_at:
                self._write([])  # nothing new: try to replay the spill file

    def _collect(self) -> tuple[list[dict[str, Any]], bool]:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                break
            if item is _STOP:
                while True:  # drain what arrived before the stop
                    try:
                        rest = self._queue.get_nowait()
                    except queue.Empty:
                        return batch, True
                    if rest is not _STOP:
                        batch.append(rest)
            batch.append(item)
        return batch, False

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            if time.monotonic() < self._retry_at:
                raise Unavailable("database marked unreachable; retrying later")
            if self.spill_file.exists():
                self._replay()
            if batch:
                with self.db.write() as conn:
                    _insert(conn, self.db, batch)
        except (SQLAlchemyError, Unavailable, OSError) as exc:
            if batch:
                self._spill(batch)
            if time.monotonic() >= self._retry_at:
                log.warning("event store unreachable (%s); spilling to %s", exc, self.spill_file)
            self._retry_at = time.monotonic() + RETRY_INTERVAL_S
        finally:
            if batch:
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _spill(self, batch: list[dict[str, Any]]) -> None:
        self.spill_file.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_file.open("a", encoding="utf-8") as handle:
            for row in batch:
                handle.write(json.dumps(row, default=_json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _replay(self) -> None:
        rows = [_from_json(line) for line in self.spill_file.read_text().splitlines() if line]
        with self.db.write() as conn:
            for start in range(0, len(rows), self.batch_size):
                _insert(conn, self.db, rows[start : start + self.batch_size])
        # Removed only once committed: a crash in between replays again, and the inserts
        # skip what is already stored.
        self.spill_file.unlink()
        log.info("replayed %d spilled events", len(rows))


def _insert(conn: Connection, db: Database, rows: list[dict[str, Any]]) -> None:
    insert = postgres_insert if db.is_postgres else sqlite_insert
    conn.execute(insert(events).on_conflict_do_nothing(index_elements=["request_id"]), rows)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot spill {type(value).__name__}")


def _from_json(line: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(line)
    row["time"] = datetime.fromisoformat(row["time"])
    return row
