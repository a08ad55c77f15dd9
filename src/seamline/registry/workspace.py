"""Local mode: open the configured database, initialise a home, act as a local user.

Whoever can open the database file (or holds the PostgreSQL credentials) administers it, so
local actors get every scope; remote callers get only what their API key carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from seamline.core.settings import Settings
from seamline.registry import audit
from seamline.registry.identity import Actor, Scope, effective_scopes, ensure_project, get_project
from seamline.registry.service import Registry
from seamline.store import Database
from seamline.store.migrate import upgrade


@dataclass(frozen=True)
class InitReport:
    database_url: str
    migrations_applied: list[str]
    project: str
    project_created: bool


def open_database(settings: Settings) -> Database:
    return Database(settings.resolved_database_url)


def initialise(settings: Settings, db: Database) -> InitReport:
    """Create the home, the key secret and the schema, and the default project. Idempotent."""
    settings.home.mkdir(parents=True, exist_ok=True)
    secret = settings.key_secret()
    applied = upgrade(db, secret=secret)
    audit.use_secret(db, secret)  # creating the project appends its first audit entry
    with db.write() as conn:
        _, created = ensure_project(conn, settings.project, actor=settings.acting_user)
    return InitReport(
        db.url.render_as_string(hide_password=True), applied, settings.project, created
    )


def open_registry(settings: Settings) -> Registry:
    return Registry(open_database(settings), key_secret=settings.key_secret())


def local_actor(db: Database, project: str, user: str) -> Actor:
    with db.read() as conn:
        found = get_project(conn, project)
    return Actor(user, found, effective_scopes(frozenset({Scope.ADMIN})))
