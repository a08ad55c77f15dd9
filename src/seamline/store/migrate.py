"""Apply Alembic migrations programmatically: ``seamline init`` and ``seamline db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from seamline.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db: Database, revision: str = "head", *, secret: bytes | None = None) -> list[str]:
    """Apply pending migrations up to ``revision``; returns the ones applied, oldest first.

    ``secret`` is the installation secret: a migration that rewrites keyed data (0005
    re-keys the audit chain) needs it, and fails without it when there is data to rewrite."""
    before = current_revision(db)
    config = _config(db)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        config.attributes["secret"] = secret
        command.upgrade(config, revision)
    script = ScriptDirectory.from_config(config)
    applied = [rev.revision for rev in script.iterate_revisions(current_revision(db), before)]
    return list(reversed(applied))


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(_config(db)).get_current_head()
