"""Dashboard sign-ins: a session per browser, bound to the API key it was opened with.

Signing in needs a key that can read its project (not a service's invoke-only key). The
cookie carries a random token and only its HMAC is stored (as for API keys), so a copy
of the database opens no session. A session ends at sign-out, ``SESSION_LIFETIME`` after
sign-in, or as soon as its key is revoked: every request resolves the key again, so the
session has exactly the key's project and scopes, never more. Its CSRF token is random
per session (a synchroniser token, which the dashboard's forms carry). Sign-in and
sign-out are audited like any other action.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from seamline.core.clock import as_utc, utcnow
from seamline.core.errors import AuthenticationFailed, PermissionDenied
from seamline.registry.access import append_audit, lock_project
from seamline.registry.identity import KEY_PREFIX, Actor, Scope, actor_of_key, hash_key
from seamline.store import Database
from seamline.store.schema import ui_sessions

SESSION_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Session:
    actor: Actor
    csrf_token: str
    expires_at: datetime


class SessionOperations:
    db: Database
    key_secret: bytes

    def open_session(self, plaintext_key: str) -> tuple[str, Session]:
        """A new session for the key's holder: the cookie's token (returned once) and the
        session. A wrong or revoked key raises AuthenticationFailed."""
        if not plaintext_key.startswith(KEY_PREFIX):
            raise AuthenticationFailed("invalid API key: seamline keys start with 'sk-seam-'")
        key_hash = hash_key(self.key_secret, plaintext_key)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.write() as conn:
            actor = _reader(actor_of_key(conn, key_hash))
            conn.execute(delete(ui_sessions).where(ui_sessions.c.expires_at < now))
            conn.execute(
                insert(ui_sessions).values(
                    token_hash=self._hash(token),
                    key_hash=key_hash,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + SESSION_LIFETIME,
                )
            )
            lock_project(conn, actor.project)
            append_audit(conn, actor, action="ui.sign_in", target=actor.key_id or "", details={})
        return token, Session(actor, csrf, now + SESSION_LIFETIME)

    def session(self, token: str) -> Session:
        """The live session behind a cookie's token; AuthenticationFailed when there is
        none, it has expired, or its key was revoked."""
        with self.db.read() as conn:
            row = conn.execute(
                select(ui_sessions).where(ui_sessions.c.token_hash == self._hash(token))
            ).first()
            if row is None or as_utc(row.expires_at) <= utcnow():
                raise AuthenticationFailed("not signed in", code="no_session")
            actor = _reader(actor_of_key(conn, row.key_hash))  # scopes as the key has them now
        return Session(actor, row.csrf_token, as_utc(row.expires_at))

    def close_session(self, token: str) -> None:
        """Sign out: the session is deleted (its cookie opens nothing afterwards)."""
        with self.db.write() as conn:
            row = conn.execute(
                delete(ui_sessions)
                .where(ui_sessions.c.token_hash == self._hash(token))
                .returning(ui_sessions.c.key_hash)
            ).first()
            if row is None:
                return
            try:
                actor = actor_of_key(conn, row.key_hash)
            except AuthenticationFailed:
                return  # a revoked key's session: gone, nothing to record it against
            lock_project(conn, actor.project)
            append_audit(conn, actor, action="ui.sign_out", target=actor.key_id or "", details={})

    def _hash(self, token: str) -> str:
        return hash_key(self.key_secret, "session:" + token)


def _reader(actor: Actor) -> Actor:
    if not actor.can(Scope.READ):  # a service's invoke-only key shows nothing
        raise PermissionDenied(
            "this key cannot read its project (it has the invoke scope only): "
            "sign in with a key that has the read, write or admin scope",
            code="missing_scope",
        )
    return actor
