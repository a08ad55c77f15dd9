"""The registry's operations on its own administration: API keys, content logging and alias
policies, and reading and anchoring the audit log."""

from __future__ import annotations

from collections.abc import Sequence

from seamline.core.errors import PermissionDenied
from seamline.registry import audit, identity
from seamline.registry.access import lock_project, require
from seamline.registry.anchors import Anchor
from seamline.registry.identity import Actor, Project, Scope
from seamline.registry.policy import AliasPolicy, check_alias_name, list_policies, set_policy
from seamline.store import Database


class AdministrationOperations:
    db: Database
    key_secret: bytes

    def authenticate(self, plaintext_key: str) -> Actor:
        with self.db.read() as conn:
            return identity.authenticate(conn, self.key_secret, plaintext_key)

    def create_key(
        self,
        actor: Actor,
        *,
        owner: str,
        scopes: frozenset[Scope],
        name: str,
        models: list[str] | None = None,
    ) -> tuple[str, identity.ApiKeyInfo]:
        """A new key in the actor's project; the plaintext is returned once and never stored."""
        require(actor, Scope.ADMIN)
        if actor.models is not None and (
            models is None or not all(actor.may_call(m) for m in models)
        ):
            raise PermissionDenied(
                "a key limited to some models can only create keys limited to those models",
                code="models_beyond_own",
            )
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            return identity.create_key(
                conn,
                self.key_secret,
                project=actor.project,
                owner=owner,
                scopes=scopes,
                name=name,
                actor=actor.user,
                models=models,
            )

    def revoke_key(self, actor: Actor, key_id: str) -> identity.ApiKeyInfo:
        require(actor, Scope.ADMIN)
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            return identity.revoke_key(conn, project=actor.project, key_id=key_id, actor=actor.user)

    def list_keys(self, actor: Actor) -> list[identity.ApiKeyInfo]:
        require(actor, Scope.ADMIN)
        with self.db.read() as conn:
            return identity.list_keys(conn, actor.project)

    def set_content_logging(self, actor: Actor, mode: str) -> Project:
        require(actor, Scope.ADMIN)
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            return identity.set_content_logging(conn, actor.project, mode, actor=actor.user)

    def list_policies(self, actor: Actor) -> list[AliasPolicy]:
        require(actor, Scope.READ)
        with self.db.read() as conn:
            return list_policies(conn, actor.project)

    def set_policy(self, actor: Actor, policy: AliasPolicy) -> AliasPolicy:
        require(actor, Scope.ADMIN)
        check_alias_name(policy.alias)
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            return set_policy(conn, actor.project, policy, actor=actor.user)


class AuditOperations:
    db: Database

    def audit_log(
        self, actor: Actor, *, limit: int | None = None, action: str | None = None
    ) -> list[audit.AuditEntry]:
        require(actor, Scope.READ)
        with self.db.read() as conn:
            return audit.entries(conn, actor.project.id, limit=limit, action=action)

    def verify_audit(self, actor: Actor, *, anchors: Sequence[Anchor] = ()) -> audit.ChainReport:
        """Recompute the project's chain and check it against its ``anchors``, if any."""
        require(actor, Scope.READ)
        with self.db.read() as conn:
            return audit.verify(conn, actor.project.id, anchors=anchors)

    def anchor_audit(self, actor: Actor, *, anchors: Sequence[Anchor] = ()) -> Anchor:
        """The project's chain head, signed, for keeping outside the database; a chain that
        fails verification (against ``anchors`` too) is refused."""
        require(actor, Scope.READ)
        with self.db.read() as conn:
            return audit.anchor(conn, actor.project.id, actor.project.name, anchors=anchors)
