"""The event writer: batches events into the store off the request path, and never loses one.

Request handlers hand events to :meth:`EventWriter.submit` (a lock-free queue put, a few
microseconds). A background thread writes them in batches. When the database cannot be
reached, a batch is appended to a local spill file (JSON lines, fsync'd) instead; once the
database answers again the spill file is replayed before new events. Inserts ignore a
``request_id`` already stored, so a replay interrupted half-way can simply run again. A row
the database refuses (not its connection: its data) is set aside, with a line cut short by a
crash, in ``events-spill-rejected.jsonl``, so that it cannot hold back the events behind it.
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
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from seamline.core.errors import Unavailable
from seamline.store import Database
from seamline.store.schema import events
from seamline.telemetry.event import CallEvent

log = logging.getLogger("seamline.events")

# Small batches keep each insert's hold on the GIL short, so request latency stays even.
BATCH_SIZE = 100
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
        """Queue an event (turned into a row on the writer thread, not the request's)."""
        with self._idle:
            self._pending += 1
        self._queue.put(event)

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
            try:
                batch, stopping = self._collect()
                if stopping:  # the last chance: try the database whatever the retry timer says
                    self._retry_at = 0.0
                if batch or stopping:
                    self._write(batch)
                elif self.spill_file.exists() and time.monotonic() >= self._retry_at:
                    self._write([])  # nothing new: try to replay the spill file
            except Exception:  # a bug must not stop the thread: every later event would be lost
                log.exception("event writer error")

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
                        batch.append(_row(rest))
            batch.append(_row(item))
        return batch, False

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            if time.monotonic() < self._retry_at:
                raise Unavailable("database marked unreachable; retrying later")
            if self.spill_file.exists():
                self._replay()
            if batch:
                self._insert_or_set_aside(batch)
        except (OperationalError, InterfaceError, Unavailable, OSError) as exc:
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

    def _insert_or_set_aside(self, rows: list[dict[str, Any]]) -> None:
        """Insert a batch; if the database refuses its data (not its connection), insert the
        rows one by one and set aside the ones it refuses, so one bad row cannot block every
        event behind it."""
        try:
            with self.db.write() as conn:
                _insert(conn, self.db, rows)
            return
        except (OperationalError, InterfaceError):
            raise
        except SQLAlchemyError:
            pass
        for row in rows:
            try:
                with self.db.write() as conn:
                    _insert(conn, self.db, [row])
            except (OperationalError, InterfaceError):
                raise
            except SQLAlchemyError as exc:
                log.error(
                    "event %s refused by the database (%s); set aside in %s",
                    row.get("request_id"),
                    exc.__class__.__name__,
                    self.rejected_file,
                )
                self._append(self.rejected_file, [row])

    @property
    def rejected_file(self) -> Path:
        return self.spill_file.with_name(self.spill_file.stem + "-rejected.jsonl")

    def _spill(self, batch: list[dict[str, Any]]) -> None:
        self._append(self.spill_file, batch)

    @staticmethod
    def _append(path: Path, rows: list[dict[str, Any]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, default=_json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _replay(self) -> None:
        rows: list[dict[str, Any]] = []
        for line in self.spill_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rows.append(_from_json(line))
            except (ValueError, KeyError, TypeError):
                # A line cut by a crash mid-write: keep it for a person, replay the rest.
                with self.rejected_file.open("a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
        for start in range(0, len(rows), self.batch_size):
            self._insert_or_set_aside(rows[start : start + self.batch_size])
        # Removed only once committed: a crash in between replays again, and the inserts
        # skip what is already stored.
        self.spill_file.unlink()
        log.info("replayed %d spilled events", len(rows))


def _row(event: CallEvent) -> dict[str, Any]:
    row: dict[str, Any] = _scrubbed(event.to_row())
    return row


def _scrubbed(value: Any) -> Any:
    """Without NUL characters, which PostgreSQL text and json refuse (and SQLite keeps)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


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
