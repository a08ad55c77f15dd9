from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from seamline.core.clock import utcnow
from seamline.registry import Registry, audit
from seamline.registry.identity import ensure_project
from seamline.store import Database, metadata
from seamline.store.migrate import current_revision, head_revision, upgrade


def test_upgrade_from_empty_reaches_head_and_is_idempotent(empty_db: Database) -> None:
    assert current_revision(empty_db) is None
    applied = upgrade(empty_db)
    assert applied[0] == "0001"
    assert current_revision(empty_db) == head_revision(empty_db)
    assert upgrade(empty_db) == []
    tables = set(inspect(empty_db.engine).get_table_names())
    assert {"artefacts", "artefact_versions", "aliases", "audit_log", "api_keys"} <= tables


def test_migrations_match_the_schema_module(db: Database) -> None:
    """A table changed in schema.py without a migration fails here."""
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_database_refuses_to_change_or_delete_audit_entries(registry: Registry) -> None:
    with registry.db.write() as conn:
        ensure_project(conn, "acme", actor="alice")
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), registry.db.write() as conn:
            conn.execute(text(statement))
    with registry.db.read() as conn:
        assert conn.execute(text("SELECT actor FROM audit_log")).scalar_one() == "alice"


def test_upgrading_from_the_first_revision_keeps_the_data(empty_db: Database) -> None:
    """A database made by the first release upgrades in place, and its keys still work.
    Rows are written with the first revision's columns, as that release wrote them."""
    from seamline.registry.identity import KEY_PREFIX, hash_key

    upgrade(empty_db, "0001")
    audit.use_secret(empty_db, b"secret")  # new entries are keyed; test_audit.py has old ones
    with empty_db.write() as conn:
        project, _ = ensure_project(conn, "acme", actor="ops")
        conn.execute(
            text("INSERT INTO users (name, created_at) VALUES ('svc', :now)"), {"now": utcnow()}
        )
        conn.execute(
            text(
                "INSERT INTO api_keys (public_id, project_id, user_id, name, prefix, key_hash,"
                " scopes, created_at) VALUES ('key_old', :project, 1, 'old', 'sk-seam-abcd',"
                " :hash, '[\"read\"]', :now)"
            ),
            {
                "project": project.id,
                "hash": hash_key(b"secret", KEY_PREFIX + "old-key"),
                "now": utcnow(),
            },
        )
    assert upgrade(empty_db, secret=b"secret")[-1] == head_revision(empty_db)
    registry = Registry(empty_db, key_secret=b"secret")
    actor = registry.authenticate(KEY_PREFIX + "old-key")
    assert (actor.user, actor.key_id, actor.models) == ("svc", "key_old", None)
    assert registry.verify_audit(actor).ok
