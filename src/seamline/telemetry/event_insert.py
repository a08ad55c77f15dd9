"""Events into the ``events`` table with a fixed INSERT, below SQLAlchemy's Core layer.

It exists for speed, measured. In ``seamline serve`` at concurrency 16 (non-streamed, SQLite,
``bench/profile_gateway.py``) the writer thread spent 0.11 ms of CPU per call through
``insert(events).on_conflict_do_nothing()`` with rows as dicts, 0.07 with the statement below
run by one ``executemany``, and 0.05 with it run 16 rows at a time (see ``_SQLITE_CHUNKS``),
which also took 0.06 off the event loop: 0.44 ms per call in all, against 0.51-0.54. Alone
(``bench/event_writer.py``, no event loop competing for the GIL) the Core insert costs 50-55
µs per event on SQLite and 64-67 on PostgreSQL, this one 21-26 and 28-32: tuples built
straight from the event, orjson for the JSON columns, a statement compiled once.

The statement runs on a connection from :meth:`Database.write`, so the pool, the SQLite
pragmas and ``BEGIN IMMEDIATE``, PostgreSQL's pre-ping and SQLAlchemy's error classes (which
the writer tells outages from refused rows by) are those of every other write. A SQLite
connection of the writer's own (as ``gateway/stores/changes.py`` keeps for its probe)
measured 1-2 µs an event cheaper, within the noise, and would have repeated all of that.

What it stores is what SQLAlchemy stored, column for column, so rows written either way read
back the same:

* text cut to its column's width (``CallEvent.to_row`` does the same for the spill file), NUL
  characters removed, which PostgreSQL refuses (looked for with one ``in`` per value; the
  copy is made only when one is there);
* JSON columns as JSON (``null`` for None: SQLAlchemy's ``JSON`` default), compact;
* ``time`` on SQLite as SQLAlchemy's ``DATETIME`` writes it (``YYYY-MM-DD HH:MM:SS.ffffff``,
  no offset), on PostgreSQL as the ``datetime`` itself (``timestamptz``);
* a ``request_id`` already stored skipped (``ON CONFLICT (request_id) DO NOTHING``), so a
  replay of the spill file can run twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain
from operator import attrgetter
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, DateTime, String
from sqlalchemy.exc import DBAPIError, IntegrityError

from seamline.store.schema import events
from seamline.telemetry.event import STORED_FIELDS, CallEvent, without_nul
from seamline.telemetry.rollups import add_to_rollups, not_yet_stored

Row = dict[str, Any]

_TYPES = {column.name: column.type for column in events.columns}
_STATEMENT = (
    f"INSERT INTO events ({', '.join(STORED_FIELDS)}) VALUES {{}} "
    "ON CONFLICT (request_id) DO NOTHING"
)
# psycopg's placeholders; its executemany sends the rows in one pipeline.
_POSTGRES_INSERT = _STATEMENT.format(f"({', '.join(['%s'] * len(STORED_FIELDS))})")
_POSTGRES_COPY = f"COPY events ({', '.join(STORED_FIELDS)}) FROM STDIN"
# On SQLite, several rows per statement: sqlite3 lets go of the GIL around every step, so an
# executemany of 100 rows hands the GIL to the event loop and back 100 times, and the loop is
# made to drop it each time (numbers in the module doc; uncontended, chunks cost 3-4 µs an
# event more than executemany). 16 rows (a batch of 100 in 7 statements) stay under SQLite's
# limit on parameters before 3.32, 999.
_SQLITE_ROW = f"({', '.join('?' * len(STORED_FIELDS))})"
_SQLITE_CHUNKS = (16, 4, 1)
_SQLITE_INSERTS = {
    rows: _STATEMENT.format(", ".join([_SQLITE_ROW] * rows)) for rows in _SQLITE_CHUNKS
}
# (position, width, 0 for none) of every text column; positions of the JSON and time ones.
_TEXT = tuple(
    (i, getattr(_TYPES[name], "length", None) or 0)
    for i, name in enumerate(STORED_FIELDS)
    if isinstance(_TYPES[name], String)
)
_JSON = tuple(i for i, name in enumerate(STORED_FIELDS) if isinstance(_TYPES[name], JSON))
_TIMES = tuple(i for i, name in enumerate(STORED_FIELDS) if isinstance(_TYPES[name], DateTime))
_event_values = attrgetter(*STORED_FIELDS)
_ESCAPED_NUL = b"\\u0000"


class RowsRefused(Exception):
    """A row's data cannot be turned into the database's types (a value JSON cannot hold)."""


def insert_events(conn: Connection, rows: Sequence[CallEvent | Row], *, postgres: bool) -> None:
    """Insert events (or rows read back from the spill file) on ``conn``, in its transaction.

    Raises :class:`RowsRefused` for a value that cannot be converted, and SQLAlchemy's
    exceptions for what the database says, as ``conn.execute`` would.
    """
    if not rows:
        return
    to_json, to_time = (_pg_json, _pg_time) if postgres else (_sqlite_json, _sqlite_time)
    try:
        params = [_params(row, to_json, to_time) for row in rows]
    except (TypeError, ValueError) as exc:
        raise RowsRefused(f"{exc.__class__.__name__}: {exc}") from exc
    # Spilled rows may be stored already (a replay cut short): only new ones are summed.
    spilled = [row for row in rows if not isinstance(row, CallEvent)]
    new: list[CallEvent | Row] = [row for row in rows if isinstance(row, CallEvent)]
    if spilled:
        if postgres:  # workers replaying one spill file take turns: none sums a row twice
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('seamline_replay'))")
        new += not_yet_stored(conn, spilled)
    if postgres and not spilled:
        _copy_or_insert(conn, params)
    elif postgres:
        conn.exec_driver_sql(_POSTGRES_INSERT, params)
    else:
        start = 0
        for size in _SQLITE_CHUNKS:
            while len(params) - start >= size:
                chunk = params[start : start + size]
                conn.exec_driver_sql(_SQLITE_INSERTS[size], tuple(chain.from_iterable(chunk)))
                start += size
    add_to_rollups(conn, new, postgres=postgres, to_time=to_time)


def _copy_or_insert(conn: Connection, params: list[tuple[Any, ...]]) -> None:
    """Fresh events by ``COPY`` (measured in bench/event_writer.py against the INSERT's
    pipeline), inside a savepoint: a request id already stored (a client reusing one) makes
    the COPY fail as a whole, and the batch is then inserted row by row past the conflict,
    as before."""
    try:
        with conn.begin_nested():
            try:
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(_POSTGRES_COPY) as copy:
                    for row in params:
                        copy.write_row(row)
            except psycopg.Error as exc:
                # As SQLAlchemy's own classes, which the writer tells refused rows (DataError)
                # from outages (OperationalError) by, as for every other statement.
                raise DBAPIError.instance(_POSTGRES_COPY, None, exc, psycopg.Error) from exc
    except IntegrityError:
        conn.exec_driver_sql(_POSTGRES_INSERT, params)


def _params(
    row: CallEvent | Row, to_json: Callable[[Any], Any], to_time: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    if isinstance(row, CallEvent):
        values = list(_event_values(row))
    else:
        values = [row.get(name) for name in STORED_FIELDS]
    for i, width in _TEXT:
        text = values[i]
        if text is not None:
            if width and len(text) > width:
                text = values[i] = text[:width]
            if "\x00" in text:
                values[i] = text.replace("\x00", "")
    for i in _JSON:
        values[i] = to_json(values[i])
    for i in _TIMES:
        when = values[i]
        if when is not None:
            values[i] = to_time(when)
    return tuple(values)


def _json_text(value: Any) -> str:
    try:
        raw = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson will not write (an integer over 64 bits): as SQLAlchemy did
        return json.dumps(without_nul(value))
    if _ESCAPED_NUL in raw:  # rare: only then walk the value
        raw = orjson.dumps(without_nul(value), option=orjson.OPT_NON_STR_KEYS)
    return raw.decode()


def _sqlite_json(value: Any) -> str:
    return _json_text(value)


def _pg_json(value: Any) -> Json:
    # Turned into text here, not by psycopg while it sends: a value JSON cannot hold is then
    # a RowsRefused, set aside, like any refused row.
    return Json(_json_text(value), dumps=str)


def _sqlite_time(when: datetime) -> str:
    """As SQLAlchemy's SQLite DATETIME stores it: the fields as given, no offset."""
    return when.isoformat(" ", "microseconds")[:26]


def _pg_time(when: datetime) -> datetime:
    return when
