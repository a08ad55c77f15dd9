"""Shared fixtures: every store-backed test runs on SQLite and on PostgreSQL.

PostgreSQL runs at 127.0.0.1:5432 here and in CI (``SEAMLINE_TEST_POSTGRES_URL`` overrides
it). Each test gets its own schema, dropped afterwards, so parallel runs never collide and CI's
shared server is left clean. Outside CI, PostgreSQL tests skip when no server answers.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope, effective_scopes, ensure_project
from seamline.store import Database
from seamline.store.migrate import upgrade
from tests.live import LiveServer

POSTGRES_URL = os.environ.get(
    "SEAMLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
KEY_SECRET = b"test-key-secret"


def _postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    available = _postgres_available()
    if not available and os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI and does not answer at {POSTGRES_URL}")
    return available


@pytest.fixture
def postgres_schema(postgres_available: bool) -> Iterator[str]:
    """A fresh, empty schema on the PostgreSQL server, dropped after the test."""
    if not postgres_available:
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")
    schema = f"seamline_test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database, before migrations: SQLite in a temporary folder, or PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'seamline.db'}")
    else:
        schema = request.getfixturevalue("postgres_schema")
        db = Database(POSTGRES_URL, schema=schema)
    yield db
    db.dispose()


@pytest.fixture
def db(empty_db: Database) -> Database:
    upgrade(empty_db)
    return empty_db


@pytest.fixture
def registry(db: Database) -> Registry:
    return Registry(db, key_secret=KEY_SECRET)


def make_actor(
    registry: Registry,
    user: str,
    project: str = "acme",
    scopes: frozenset[Scope] = frozenset({Scope.ADMIN}),
) -> Actor:
    with registry.db.write() as conn:
        found, _ = ensure_project(conn, project, actor="setup")
    return Actor(user, found, effective_scopes(scopes))


@pytest.fixture
def alice(registry: Registry) -> Actor:
    """An admin of project ``acme``, the author of most test versions."""
    return make_actor(registry, "alice")


@pytest.fixture
def bob(registry: Registry) -> Actor:
    """A second admin of ``acme``: a reviewer who is not the author."""
    return make_actor(registry, "bob")


@pytest.fixture
def server(registry: Registry) -> Iterator[LiveServer]:
    """The seamline HTTP API on the test database, served by uvicorn on 127.0.0.1."""
    from seamline.api import create_app

    live = LiveServer(create_app(registry=registry)).start()
    yield live
    live.stop()
