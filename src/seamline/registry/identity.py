"""Projects (tenants), users, API keys and scopes.

An API key is ``sk-seam-`` followed by 32 random bytes, shown once. Only an HMAC-SHA256 of
it under the installation's secret is stored: a leaked database alone does not yield usable
keys, and lookup stays a single indexed equality (the key has 256 bits of entropy, so a slow
password hash would add cost and no safety).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, select
from sqlalchemy.exc import IntegrityError

from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from seamline.registry import audit
from seamline.store.database import insert_returning_id
from seamline.store.schema import api_keys, projects, users

KEY_PREFIX = "sk-seam-"


class Scope(StrEnum):
    ADMIN = "admin"  # everything, including keys and policies
    WRITE = "write"  # push, approve, move aliases (as policies allow)
    READ = "read"  # read artefacts, aliases and the audit log
    INVOKE = "invoke"  # call models through the gateway


# What each scope grants besides itself.
_IMPLIES: dict[Scope, frozenset[Scope]] = {
    Scope.ADMIN: frozenset(Scope),
    Scope.WRITE: frozenset({Scope.READ}),
    Scope.READ: frozenset(),
    Scope.INVOKE: frozenset(),
}


def parse_scopes(values: list[str]) -> frozenset[Scope]:
    scopes: set[Scope] = set()
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                scopes.add(Scope(part))
            except ValueError:
                known = ", ".join(s.value for s in Scope)
                raise InvalidInput(f"unknown scope {part!r} (known: {known})") from None
    if not scopes:
        raise InvalidInput("at least one scope is needed")
    return frozenset(scopes)


def effective_scopes(scopes: frozenset[Scope]) -> frozenset[Scope]:
    granted = set(scopes)
    for scope in scopes:
        granted |= _IMPLIES[scope]
    return frozenset(granted)


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    content_logging: str


@dataclass(frozen=True)
class Actor:
    """Who is acting, in which project, with which scopes (already expanded)."""

    user: str
    project: Project
    scopes: frozenset[Scope]
    key_id: str | None = None
    models: tuple[str, ...] | None = None  # what the key may call; None: any model

    def can(self, scope: Scope) -> bool:
        return scope in self.scopes

    def may_call(self, model: str) -> bool:
        """Whether the key may call ``model`` (patterns as in ``gpt-4o*``)."""
        return self.models is None or any(fnmatchcase(model, p) for p in self.models)


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    name: str
    prefix: str
    owner: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    models: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "owner": self.owner,
            "scopes": self.scopes,
            "models": self.models,
            "created_at": isoformat(self.created_at),
            "revoked_at": isoformat(self.revoked_at) if self.revoked_at else None,
        }


def _project(row: RowMapping) -> Project:
    return Project(row["id"], row["name"], row["content_logging"])


def get_project(conn: Connection, name: str) -> Project:
    row = conn.execute(select(projects).where(projects.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"unknown project {name!r}", code="project_not_found")
    return _project(row)


def ensure_project(conn: Connection, name: str, *, actor: str) -> tuple[Project, bool]:
    """The project named ``name``, created (and audited) if new; the flag says it was created."""
    existing = conn.execute(select(projects).where(projects.c.name == name)).mappings().first()
    if existing is not None:
        return _project(existing), False
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput(f"invalid project name {name!r}: use letters, digits, - and _")
    try:
        with conn.begin_nested():  # another writer may create it first: theirs wins
            project_id = insert_returning_id(
                conn,
                projects.insert().values(name=name, content_logging="full", created_at=utcnow()),
            )
    except IntegrityError:
        return get_project(conn, name), False
    audit.append(conn, project_id=project_id, actor=actor, action="project.create", target=name)
    return Project(project_id, name, "full"), True


CONTENT_LOGGING = ("full", "redacted", "none")


def set_content_logging(conn: Connection, project: Project, mode: str, *, actor: str) -> Project:
    """What the gateway keeps of request and response content for this project."""
    if mode not in CONTENT_LOGGING:
        raise InvalidInput(f"content logging must be one of {', '.join(CONTENT_LOGGING)}")
    conn.execute(projects.update().where(projects.c.id == project.id).values(content_logging=mode))
    audit.append(
        conn,
        project_id=project.id,
        actor=actor,
        action="project.content_logging",
        target=project.name,
        details={"from": project.content_logging, "to": mode},
    )
    return Project(project.id, project.name, mode)


def ensure_user(conn: Connection, name: str) -> int:
    """The user's id, created if new. Users are shared by every project, so two projects'
    writers (each holding only its own project's lock) may race to create one."""
    if not name or len(name) > 200 or "\x00" in name:
        raise InvalidInput("a user name has 1 to 200 characters", code="invalid_user")
    row = conn.execute(select(users.c.id).where(users.c.name == name)).first()
    if row is not None:
        return int(row.id)
    try:
        with conn.begin_nested():
            return insert_returning_id(conn, users.insert().values(name=name, created_at=utcnow()))
    except IntegrityError:
        return int(conn.execute(select(users.c.id).where(users.c.name == name)).scalar_one())


def hash_key(secret: bytes, plaintext: str) -> str:
    return hmac.new(secret, plaintext.encode(), hashlib.sha256).hexdigest()


def create_key(
    conn: Connection,
    secret: bytes,
    *,
    project: Project,
    owner: str,
    scopes: frozenset[Scope],
    name: str,
    actor: str,
    models: list[str] | None = None,
) -> tuple[str, ApiKeyInfo]:
    """Create a key; returns its plaintext (never stored) and its description. ``models``
    limits what it may call through the gateway (None: any model)."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    public_id = "key_" + secrets.token_hex(8)
    now = utcnow()
    scope_list = sorted(s.value for s in scopes)
    prefix = plaintext[: len(KEY_PREFIX) + 4]
    conn.execute(
        api_keys.insert().values(
            public_id=public_id,
            project_id=project.id,
            user_id=ensure_user(conn, owner),
            name=name,
            prefix=prefix,
            key_hash=hash_key(secret, plaintext),
            scopes=scope_list,
            models=models,
            created_at=now,
        )
    )
    audit.append(
        conn,
        project_id=project.id,
        actor=actor,
        action="key.create",
        target=public_id,
        details={"name": name, "owner": owner, "scopes": scope_list, "models": models},
    )
    return plaintext, ApiKeyInfo(public_id, name, prefix, owner, scope_list, now, None, models)


def revoke_key(conn: Connection, *, project: Project, key_id: str, actor: str) -> ApiKeyInfo:
    key = _key_row(conn, project, key_id)
    if key["revoked_at"] is not None:
        raise Conflict(f"key {key_id} is already revoked", code="key_revoked")
    conn.execute(api_keys.update().where(api_keys.c.id == key["id"]).values(revoked_at=utcnow()))
    audit.append(conn, project_id=project.id, actor=actor, action="key.revoke", target=key_id)
    return _key_info(_key_row(conn, project, key_id))


def list_keys(conn: Connection, project: Project) -> list[ApiKeyInfo]:
    rows = conn.execute(_keys_query().where(api_keys.c.project_id == project.id)).mappings()
    return [_key_info(row) for row in rows]


# Prebuilt: every authenticated request runs it.
_KEY_BY_HASH = (
    select(
        api_keys.c.public_id,
        api_keys.c.scopes,
        api_keys.c.models,
        api_keys.c.revoked_at,
        users.c.name.label("owner"),
        projects.c.id.label("project_id"),
        projects.c.name.label("project_name"),
        projects.c.content_logging,
    )
    .select_from(api_keys)
    .join(users, users.c.id == api_keys.c.user_id)
    .join(projects, projects.c.id == api_keys.c.project_id)
    .where(api_keys.c.key_hash == bindparam("key_hash"))
)


def authenticate(conn: Connection, secret: bytes, plaintext: str) -> Actor:
    """The actor behind a bearer key; a wrong or revoked key raises AuthenticationFailed."""
    if not plaintext.startswith(KEY_PREFIX):
        raise AuthenticationFailed("invalid API key: seamline keys start with 'sk-seam-'")
    return actor_of_key(conn, hash_key(secret, plaintext))


def actor_of_key(conn: Connection, key_hash: str) -> Actor:
    """The actor behind a key, by the key's hash (a dashboard session keeps only that)."""
    row = conn.execute(_KEY_BY_HASH, {"key_hash": key_hash}).mappings().first()
    if row is None:
        raise AuthenticationFailed("invalid API key")
    if row["revoked_at"] is not None:
        raise AuthenticationFailed("this API key has been revoked", code="revoked_api_key")
    project = Project(row["project_id"], row["project_name"], row["content_logging"])
    scopes = effective_scopes(frozenset(Scope(s) for s in row["scopes"]))
    models = tuple(row["models"]) if row["models"] is not None else None
    return Actor(row["owner"], project, scopes, key_id=row["public_id"], models=models)


def _keys_query() -> Any:
    return (
        select(api_keys, users.c.name.label("owner"))
        .join(users, users.c.id == api_keys.c.user_id)
        .order_by(api_keys.c.id)
    )


def _key_row(conn: Connection, project: Project, key_id: str) -> RowMapping:
    # Scoped by project: a key id of another project is "not found", never "forbidden".
    row = (
        conn.execute(
            _keys_query().where(api_keys.c.project_id == project.id, api_keys.c.public_id == key_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no key {key_id!r} in project {project.name!r}", code="key_not_found")
    return row


def _key_info(row: RowMapping) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["public_id"],
        name=row["name"],
        prefix=row["prefix"],
        owner=row["owner"],
        scopes=list(row["scopes"]),
        created_at=as_utc(row["created_at"]),
        revoked_at=as_utc(row["revoked_at"]) if row["revoked_at"] else None,
        models=list(row["models"]) if row["models"] is not None else None,
    )
