"""Connections to the store: SQLite (WAL) on a laptop, PostgreSQL at scale, one code path.

Callers take a connection inside a transaction from :meth:`Database.read` or
:meth:`Database.write`. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that
two writers queue on the database lock instead of failing later with "database is locked"
when a read lock cannot be upgraded; readers never wait for writers (WAL).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Insert,
    create_engine,
    event,
    literal_column,
    make_url,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from seamline.core.errors import Unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "seamline_write"


def insert_returning_id(conn: Connection, statement: Insert) -> int:
    """Run an INSERT of one row and return its new integer primary key."""
    key = conn.execute(statement).inserted_primary_key
    assert key is not None, "an INSERT of one row always reports its key"
    return int(key[0])


def normalise_url(url: str) -> URL:
    """Accept ``postgresql://`` and ``postgres://`` and pick the psycopg (v3) driver for them."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class Database:
    """A SQLAlchemy engine with the per-dialect settings seamline relies on.

    ``schema`` (PostgreSQL only) puts every table in that schema through the search path:
    the test suite gives each run its own schema so runs never collide.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = normalise_url(url)
        self.schema = schema
        self.engine = self._create_engine()

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    def _create_engine(self) -> Engine:
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self.url, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _configure_sqlite_connection)
            event.listen(engine, "begin", _begin_sqlite_transaction)
            return engine
        connect_args: dict[str, Any] = {}
        if self.schema:
            connect_args["options"] = f"-csearch_path={self.schema}"
        return create_engine(self.url, connect_args=connect_args, pool_pre_ping=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a transaction that is committed (harmlessly) at the end."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction: committed on success, rolled back on error."""
        with self._connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise Unavailable(f"database unreachable: {exc.orig}") from exc
        with conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    def filter_only(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """``column`` as a condition SQLite's planner will not pick an index for (a unary
        ``+``, SQLite's documented hint), so that it takes the index that narrows best.

        Without statistics (no ANALYZE), SQLite takes an equality on any indexed column as
        about ten rows: a project's id beats a list of 500 request ids, or a prompt's
        sample index, and the query then walks the project's every row (10 s, not 0.1,
        for the drift report at a million calls). PostgreSQL plans from statistics: the
        column is left as it is."""
        if not self.is_sqlite:
            return column
        return literal_column(f"+{column.table.name}.{column.name}", column.type)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event decide how each transaction starts (see module doc).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes in WAL mode
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _begin_sqlite_transaction(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
