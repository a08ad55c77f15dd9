"""What every registry operation does around its work: check the actor's scope, serialise
the project's writers, refuse text the database cannot store, and append the audit entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from seamline.core.errors import InvalidInput, PermissionDenied
from seamline.registry import audit
from seamline.registry.identity import Actor, Project, Scope
from seamline.store.schema import projects


def require(actor: Actor, scope: Scope) -> None:
    if not actor.can(scope):
        raise PermissionDenied(
            f"{actor.user} lacks the {scope.value!r} scope in project {actor.project.name!r}",
            code="missing_scope",
        )


def lock_project(conn: Connection, project: Project) -> None:
    """Serialise writers of one project (PostgreSQL row lock; SQLite's write lock already
    serialises every writer, and SQLAlchemy renders no FOR UPDATE there)."""
    conn.execute(select(projects.c.id).where(projects.c.id == project.id).with_for_update())


def text_ok(value: str | None, what: str) -> None:
    # PostgreSQL text cannot hold NUL characters (SQLite can): refuse them on both.
    if value is not None and "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character", param=what)


def append_audit(
    conn: Connection, actor: Actor, *, action: str, target: str, details: dict[str, Any]
) -> None:
    audit.append(
        conn,
        project_id=actor.project.id,
        actor=actor.user,
        action=action,
        target=target,
        details=details,
    )
