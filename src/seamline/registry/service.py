"""The registry: push versions, move aliases under policies, approve, roll back, audit.

Every method takes the :class:`Actor` doing it and works inside that actor's project only:
a name in another project is simply "not found". Every mutation runs in one write
transaction that holds the project lock, changes the rows and appends its audit entries, so
either all of it lands or none does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from seamline.core.canonical import content_hash
from seamline.core.clock import as_utc, utcnow
from seamline.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from seamline.registry import audit, identity
from seamline.registry.anchors import Anchor
from seamline.registry.gate import GateSubject, NoEvalRunsGate, ReleaseGate
from seamline.registry.identity import Actor, Project, Scope
from seamline.registry.loader import Draft, draft_from_mapping
from seamline.registry.policy import (
    ALIAS_PATTERN,
    CANARY,
    AliasPolicy,
    get_policy,
    list_policies,
    set_policy,
)
from seamline.registry.records import (
    AliasChange,
    AliasRecord,
    ArtefactSummary,
    LineageLink,
    PushedItem,
    VersionRecord,
)
from seamline.registry.refs import LATEST, is_version_number, parse_ref
from seamline.registry.specs import REFERENCE, ArtefactKind, content_as_yaml
from seamline.store import Database
from seamline.store.database import insert_returning_id
from seamline.store.schema import (
    alias_history,
    aliases,
    approvals,
    artefact_versions,
    artefacts,
    lineage,
    projects,
)

# Referenced kinds first, so a prompt can link to a model pushed in the same batch.
_PUSH_ORDER = [kind.value for kind in ArtefactKind if kind != ArtefactKind.PROMPT] + ["prompt"]
# Fields of a prompt that point at other artefacts: (field, relation, target kind).
_PROMPT_REFERENCES = (("model", "model", "model"), ("eval_set", "eval_set", "eval_set"))


_parent = artefact_versions.alias("parent")
_VERSIONS = (
    select(artefact_versions, _parent.c.number.label("parent_number"))
    .join(artefacts, artefacts.c.id == artefact_versions.c.artefact_id)
    .outerjoin(_parent, _parent.c.id == artefact_versions.c.parent_id)
)
_BY_NAME = _VERSIONS.where(
    artefacts.c.project_id == bindparam("project_id"),
    artefacts.c.kind == bindparam("kind"),
    artefacts.c.name == bindparam("name"),
)
# Prebuilt with bind parameters: building a statement costs more than running it on SQLite.
_VERSION_BY: dict[str, Select[Any]] = {
    "latest": _VERSIONS.where(
        artefacts.c.project_id == bindparam("project_id"),
        artefacts.c.kind == bindparam("kind"),
        artefacts.c.name == bindparam("name"),
    )
    .order_by(artefact_versions.c.number.desc())
    .limit(1),
    "number": _BY_NAME.where(artefact_versions.c.number == bindparam("ref")),
    "alias": _BY_NAME.join(aliases, aliases.c.version_id == artefact_versions.c.id).where(
        aliases.c.artefact_id == artefacts.c.id, aliases.c.name == bindparam("ref")
    ),
}
_LINEAGE_OF_VERSION = (
    select(lineage, artefact_versions.c.number)
    .outerjoin(artefact_versions, artefact_versions.c.id == lineage.c.target_version_id)
    .where(lineage.c.version_id == bindparam("version_id"))
    .order_by(lineage.c.id)
)
_ALIASES_OF_VERSION = (
    select(aliases.c.name)
    .where(aliases.c.version_id == bindparam("version_id"))
    .order_by(aliases.c.name)
)


def _ref_kind(ref: int | str | None) -> str:
    return "latest" if ref is None else "number" if isinstance(ref, int) else "alias"


class _DryRun(Exception):
    """Raised inside a write transaction to roll back a dry run after computing its result."""

    def __init__(self, result: list[PushedItem]):
        self.result = result


def _text_ok(value: str | None, what: str) -> None:
    # PostgreSQL text cannot hold NUL characters (SQLite can): refuse them on both.
    if value is not None and "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character", param=what)


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


class Registry:
    """The registry's operations over one database; cheap to create, safe to share."""

    def __init__(self, db: Database, *, key_secret: bytes, gate: ReleaseGate | None = None) -> None:
        self.db = db
        self.key_secret = key_secret
        audit.use_secret(db, key_secret)
        self.gate: ReleaseGate = gate or NoEvalRunsGate()

    # -- identity and policies -------------------------------------------------------------

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
        _check_alias_name(policy.alias)
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            return set_policy(conn, actor.project, policy, actor=actor.user)

    # -- reading -------------------------------------------------------------------------

    def list_artefacts(self, actor: Actor, kind: str | None = None) -> list[ArtefactSummary]:
        require(actor, Scope.READ)
        latest = (
            select(artefact_versions.c.artefact_id, func.max(artefact_versions.c.number).label("n"))
            .group_by(artefact_versions.c.artefact_id)
            .subquery()
        )
        query = (
            select(
                artefacts,
                artefact_versions.c.content,
                artefact_versions.c.created_at.label("at"),
                latest.c.n,
            )
            .join(latest, latest.c.artefact_id == artefacts.c.id)
            .join(
                artefact_versions,
                (artefact_versions.c.artefact_id == artefacts.c.id)
                & (artefact_versions.c.number == latest.c.n),
            )
            .where(artefacts.c.project_id == actor.project.id)
            .order_by(artefacts.c.kind, artefacts.c.name)
        )
        if kind:
            query = query.where(artefacts.c.kind == kind)
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
            pointers = self._alias_map(conn, [row["id"] for row in rows])
        return [
            ArtefactSummary(
                kind=row["kind"],
                name=row["name"],
                latest_version=row["n"],
                description=row["content"].get("description", ""),
                aliases=pointers.get(row["id"], {}),
                updated_at=as_utc(row["at"]),
            )
            for row in rows
        ]

    def get_version(
        self, actor: Actor, kind: str, name: str, ref: str | int | None = None
    ) -> VersionRecord:
        """A version by number, by alias, or the latest when ``ref`` is None."""
        require(actor, Scope.READ)
        parsed = parse_ref(ref)
        with self.db.read() as conn:
            # One query on the hot path (the SDK and the gateway resolve aliases through it);
            # the slower lookups below only run to say precisely what is missing.
            row = (
                conn.execute(
                    _VERSION_BY[_ref_kind(parsed)],
                    {
                        "project_id": actor.project.id,
                        "kind": kind,
                        "name": name,
                        "ref": parsed,
                    },
                )
                .mappings()
                .first()
            )
            if row is None:
                artefact_id = self._artefact_id(conn, actor.project, kind, name)
                row = self._version_row(conn, artefact_id, kind, name, parsed)
            return self._record(conn, row, kind, name)

    def versions(self, actor: Actor, kind: str, name: str) -> list[VersionRecord]:
        require(actor, Scope.READ)
        with self.db.read() as conn:
            artefact_id = self._artefact_id(conn, actor.project, kind, name)
            rows = conn.execute(
                _VERSIONS.where(artefacts.c.id == artefact_id).order_by(
                    artefact_versions.c.number.desc()
                )
            ).mappings()
            return [self._record(conn, row, kind, name) for row in rows]

    def diff(self, actor: Actor, kind: str, name: str, a: str | int, b: str | int) -> str:
        """A unified diff of two versions' content, as YAML."""
        old = self.get_version(actor, kind, name, a)
        new = self.get_version(actor, kind, name, b)
        return "".join(
            difflib.unified_diff(
                content_as_yaml(old.content).splitlines(keepends=True),
                content_as_yaml(new.content).splitlines(keepends=True),
                fromfile=f"{name}@v{old.number}",
                tofile=f"{name}@v{new.number}",
            )
        )

    def aliases(self, actor: Actor, kind: str, name: str) -> list[AliasRecord]:
        require(actor, Scope.READ)
        with self.db.read() as conn:
            artefact_id = self._artefact_id(conn, actor.project, kind, name)
            rows = conn.execute(
                self._alias_query().where(aliases.c.artefact_id == artefact_id)
            ).mappings()
            return [_alias_record(row) for row in rows]

    def alias_history(self, actor: Actor, kind: str, name: str, alias: str) -> list[AliasChange]:
        """Oldest first."""
        require(actor, Scope.READ)
        with self.db.read() as conn:
            alias_row = self._alias_row(conn, actor.project, kind, name, alias)
            return self._history(conn, alias_row["id"])

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

    # -- writing -------------------------------------------------------------------------

    def push_documents(
        self,
        actor: Actor,
        documents: Iterable[dict[str, Any]],
        *,
        message: str = "",
        dry_run: bool = False,
    ) -> list[PushedItem]:
        """:meth:`push` for artefact documents (mappings, as in the YAML files), such as the
        HTTP API receives: document ``i`` is named ``artefacts[i]`` in errors.

        The ``write`` scope is checked before any document is validated, because validating
        a prompt compiles its templates: a key that may not push must not get that work done.
        """
        require(actor, Scope.WRITE)
        drafts = [
            draft_from_mapping(doc, source=f"artefacts[{i}]") for i, doc in enumerate(documents)
        ]
        names = [(d.kind, d.name) for d in drafts]
        if len(names) != len(set(names)):
            raise InvalidInput("an artefact appears twice in one push")
        return self.push(actor, drafts, message=message, dry_run=dry_run)

    def push(
        self, actor: Actor, drafts: Iterable[Draft], *, message: str = "", dry_run: bool = False
    ) -> list[PushedItem]:
        """Create a version for every draft whose content differs from its latest version.

        All or nothing: one invalid reference rolls the whole batch back. ``dry_run`` computes
        the same result and writes nothing.
        """
        require(actor, Scope.WRITE)
        _text_ok(message, "message")
        ordered = sorted(drafts, key=lambda d: (_PUSH_ORDER.index(d.kind), d.name))
        try:
            with self.db.write() as conn:
                lock_project(conn, actor.project)
                result = [self._push_one(conn, actor, draft, message) for draft in ordered]
                if dry_run:
                    raise _DryRun(result)
        except _DryRun as dry:
            return dry.result
        return result

    def move_alias(
        self,
        actor: Actor,
        kind: str,
        name: str,
        alias: str,
        ref: str | int,
        *,
        weight: int | None = None,
        expected_version: int | None = None,
        override: bool = False,
        reason: str | None = None,
    ) -> AliasRecord:
        """Point ``alias`` at a version: a release. Checks the alias policy (scopes,
        approvals, gate) and, when ``expected_version`` is given, that the alias still points
        where the caller last saw it (0: that it does not exist yet)."""
        _check_alias_name(alias)
        _text_ok(reason, "reason")
        if weight is not None and not 0 <= weight <= 100:
            raise InvalidInput("weight must be between 0 and 100", param="weight")
        if override and not (reason and reason.strip()):
            raise InvalidInput("an override needs a reason (--reason TEXT)", param="reason")
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            artefact_id = self._artefact_id(conn, actor.project, kind, name)
            target = self._version_row(conn, artefact_id, kind, name, parse_ref(ref))
            policy = get_policy(conn, actor.project, alias)
            if not any(actor.can(Scope(s)) for s in policy.allowed_scopes):
                raise PermissionDenied(
                    f"moving {alias!r} needs one of the scopes {', '.join(policy.allowed_scopes)}",
                    code="missing_scope",
                )
            current = self._current_alias(conn, artefact_id, alias)
            found = current["number"] if current else 0
            if expected_version is not None and expected_version != found:
                raise Conflict(
                    f"{name}@{alias} now points at v{found}, not v{expected_version}: "
                    "someone moved it; read it again and retry",
                    code="alias_conflict",
                )
            if weight is None and alias == CANARY:
                weight = current["weight"] if current else None
                if weight is None:
                    raise InvalidInput(
                        "a canary needs a traffic weight (--weight PCT)", param="weight"
                    )
            if current and current["version_id"] == target["id"] and current["weight"] == weight:
                return _alias_record(current)
            self._check_approvals(
                conn, target, alias, policy.required_approvals, policy.approver_must_differ
            )
            overridden = False
            if policy.require_gate:
                overridden = self._check_gate(
                    conn, actor, kind, name, target, alias, override, reason
                )
            record = self._point_alias(
                conn,
                actor,
                artefact_id,
                alias,
                current,
                target["id"],
                weight,
                action="move",
                reason=reason,
                override=overridden,
            )
            _audit(
                conn,
                actor,
                action="alias.move",
                target=f"{kind}:{name}@{alias}",
                details={
                    "from": current["number"] if current else None,
                    "to": target["number"],
                    "weight": weight,
                    "override": overridden,
                },
            )
            return record

    def rollback(
        self, actor: Actor, kind: str, name: str, alias: str, *, reason: str | None = None
    ) -> AliasRecord:
        """Move ``alias`` back to the target it had before its current one. Repeated
        rollbacks walk further back; no gate or approval is asked, since every earlier
        target was released once already."""
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            policy = get_policy(conn, actor.project, alias)
            if not any(actor.can(Scope(s)) for s in policy.allowed_scopes):
                raise PermissionDenied(
                    f"rolling back {alias!r} needs one of the scopes "
                    f"{', '.join(policy.allowed_scopes)}",
                    code="missing_scope",
                )
            current = self._alias_row(conn, actor.project, kind, name, alias)
            stack: list[tuple[int, int | None]] = []  # (version_id, weight) of live targets
            for change in conn.execute(
                select(alias_history)
                .where(alias_history.c.alias_id == current["id"])
                .order_by(alias_history.c.revision)
            ).mappings():
                if change["action"] == "rollback":
                    stack.pop()
                else:
                    stack.append((change["to_version_id"], change["weight"]))
            if len(stack) < 2:
                raise Conflict(
                    f"{name}@{alias} has no earlier target to roll back to",
                    code="nothing_to_roll_back",
                )
            version_id, weight = stack[-2]
            record = self._point_alias(
                conn,
                actor,
                current["artefact_id"],
                alias,
                current,
                version_id,
                weight,
                action="rollback",
                reason=reason,
            )
            _audit(
                conn,
                actor,
                action="alias.rollback",
                target=f"{kind}:{name}@{alias}",
                details={"from": current["number"], "to": record.version, "reason": reason},
            )
            return record

    def approve(
        self,
        actor: Actor,
        kind: str,
        name: str,
        ref: str | int,
        *,
        alias: str = "production",
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Record the actor's approval of a version for ``alias``. Refused to the version's
        author where the alias policy separates duties."""
        require(actor, Scope.WRITE)
        _check_alias_name(alias)
        _text_ok(comment, "comment")
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            artefact_id = self._artefact_id(conn, actor.project, kind, name)
            version = self._version_row(conn, artefact_id, kind, name, parse_ref(ref))
            policy = get_policy(conn, actor.project, alias)
            if policy.approver_must_differ and version["author"] == actor.user:
                raise PermissionDenied(
                    f"{actor.user} wrote {name} v{version['number']} and cannot approve it for "
                    f"{alias!r}: the policy asks for an approver other than the author",
                    code="self_approval",
                )
            try:
                with conn.begin_nested():
                    conn.execute(
                        approvals.insert().values(
                            version_id=version["id"],
                            alias=alias,
                            approver=actor.user,
                            comment=comment,
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError:
                raise Conflict(
                    f"{actor.user} already approved {name} v{version['number']} for {alias!r}",
                    code="already_approved",
                ) from None
            _audit(
                conn,
                actor,
                action="version.approve",
                target=f"{kind}:{name}@v{version['number']}",
                details={"alias": alias, "comment": comment},
            )
            count = self._approval_count(conn, version, alias, policy.approver_must_differ)
        return {
            "name": name,
            "version": version["number"],
            "alias": alias,
            "approver": actor.user,
            "approvals": count,
            "required": policy.required_approvals,
        }

    # -- internals -----------------------------------------------------------------------

    def _push_one(self, conn: Connection, actor: Actor, draft: Draft, message: str) -> PushedItem:
        project = actor.project
        digest = content_hash(draft.content)
        found = _find_artefact(conn, project, draft.kind, draft.name)
        if found is None:
            artefact_id = insert_returning_id(
                conn,
                artefacts.insert().values(
                    project_id=project.id, kind=draft.kind, name=draft.name, created_at=utcnow()
                ),
            )
            latest = None
        else:
            artefact_id = found
            latest = (
                conn.execute(
                    select(artefact_versions)
                    .where(artefact_versions.c.artefact_id == artefact_id)
                    .order_by(artefact_versions.c.number.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        if latest is not None and latest["content_hash"] == digest:
            return PushedItem(
                draft.kind,
                draft.name,
                draft.source,
                "unchanged",
                latest["number"],
                latest["number"],
                digest,
            )
        links = self._references(conn, project, draft)
        number = latest["number"] + 1 if latest else 1
        version_id = insert_returning_id(
            conn,
            artefact_versions.insert().values(
                artefact_id=artefact_id,
                number=number,
                content_hash=digest,
                content=draft.content,
                author=actor.user,
                message=message,
                parent_id=latest["id"] if latest else None,
                created_at=utcnow(),
            ),
        )
        for link, target_id in links:
            conn.execute(
                lineage.insert().values(
                    version_id=version_id,
                    relation=link.relation,
                    target_kind=link.kind,
                    target_name=link.name,
                    target_version_id=target_id,
                )
            )
        _audit(
            conn,
            actor,
            action="version.create",
            target=f"{draft.kind}:{draft.name}@v{number}",
            details={"content_hash": digest, "message": message, "source": draft.source},
        )
        return PushedItem(
            draft.kind,
            draft.name,
            draft.source,
            "created",
            number,
            latest["number"] if latest else None,
            digest,
        )

    def _references(
        self, conn: Connection, project: Project, draft: Draft
    ) -> list[tuple[LineageLink, int | None]]:
        """Lineage links of a prompt: its model configuration and its eval set. A reference
        with ``@ref`` must resolve; a bare name links when such an artefact exists and
        otherwise stays a name for the gateway to route."""
        if draft.kind != ArtefactKind.PROMPT:
            return []
        links: list[tuple[LineageLink, int | None]] = []
        for field_name, relation, target_kind in _PROMPT_REFERENCES:
            value = draft.content.get(field_name)
            if not isinstance(value, str):
                continue
            match = REFERENCE.fullmatch(value)
            if match is None:
                if "@" in value:
                    raise InvalidInput(f"{draft.source}: {field_name}: invalid reference {value!r}")
                links.append((LineageLink(relation, target_kind, value, None), None))
                continue
            target_name, ref = match.group("name"), match.group("ref")
            found = _find_artefact(conn, project, target_kind, target_name)
            if found is None:
                if ref is not None:
                    raise InvalidInput(
                        f"{draft.source}: {field_name}: no {target_kind} {target_name!r} "
                        "in the registry",
                        code="reference_not_found",
                    )
                links.append((LineageLink(relation, target_kind, target_name, None), None))
                continue
            try:
                target = self._version_row(conn, found, target_kind, target_name, parse_ref(ref))
            except NotFound as exc:
                raise InvalidInput(
                    f"{draft.source}: {field_name}: {exc.message}", code="reference_not_found"
                ) from None
            links.append(
                (LineageLink(relation, target_kind, target_name, target["number"]), target["id"])
            )
        return links

    def _check_approvals(
        self, conn: Connection, version: RowMapping, alias: str, required: int, must_differ: bool
    ) -> None:
        if required <= 0:
            return
        have = self._approval_count(conn, version, alias, must_differ)
        if have < required:
            raise PermissionDenied(
                f"v{version['number']} needs {required} approval(s) for {alias!r} and has "
                f"{have}: run 'seamline prompts approve' as another user first",
                code="approval_required",
            )

    def _approval_count(
        self, conn: Connection, version: RowMapping, alias: str, must_differ: bool
    ) -> int:
        query = (
            select(func.count())
            .select_from(approvals)
            .where(approvals.c.version_id == version["id"], approvals.c.alias == alias)
        )
        if must_differ:
            query = query.where(approvals.c.approver != version["author"])
        return int(conn.execute(query).scalar_one())

    def _check_gate(
        self,
        conn: Connection,
        actor: Actor,
        kind: str,
        name: str,
        target: RowMapping,
        alias: str,
        override: bool,
        reason: str | None,
    ) -> bool:
        """True when the move goes ahead on an override, which is audited here."""
        subject = GateSubject(
            actor.project.name,
            kind,
            name,
            target["number"],
            target["content_hash"],
            target["content"].get("eval_set"),
        )
        verdict = self.gate.check(subject)
        if verdict.passed:
            return False
        if not override:
            raise PermissionDenied(
                f"release gate for {alias!r}: {verdict.reason}; "
                "pass --override --reason TEXT to release anyway (audited)",
                code="gate_failed",
            )
        _audit(
            conn,
            actor,
            action="gate.override",
            target=f"{kind}:{name}@v{target['number']}",
            details={"alias": alias, "reason": reason, "gate": verdict.reason},
        )
        return True

    def _point_alias(
        self,
        conn: Connection,
        actor: Actor,
        artefact_id: int,
        alias: str,
        current: RowMapping | None,
        version_id: int,
        weight: int | None,
        *,
        action: str,
        reason: str | None,
        override: bool = False,
    ) -> AliasRecord:
        now = utcnow()
        values = {
            "version_id": version_id,
            "weight": weight,
            "updated_by": actor.user,
            "updated_at": now,
        }
        if current is None:
            revision = 1
            try:
                with conn.begin_nested():
                    alias_id = insert_returning_id(
                        conn,
                        aliases.insert().values(
                            artefact_id=artefact_id, name=alias, revision=revision, **values
                        ),
                    )
            except IntegrityError:
                raise Conflict(
                    f"alias {alias!r} was created concurrently; retry", code="alias_conflict"
                ) from None
        else:
            revision = current["revision"] + 1
            alias_id = current["id"]
            moved = conn.execute(
                aliases.update()
                .where(aliases.c.id == alias_id, aliases.c.revision == current["revision"])
                .values(revision=revision, **values)
            ).rowcount
            if moved != 1:
                raise Conflict(f"alias {alias!r} moved concurrently; retry", code="alias_conflict")
        conn.execute(
            alias_history.insert().values(
                alias_id=alias_id,
                revision=revision,
                action=action,
                from_version_id=current["version_id"] if current else None,
                to_version_id=version_id,
                weight=weight,
                actor=actor.user,
                reason=reason,
                override=override,
                at=now,
            )
        )
        row = conn.execute(self._alias_query().where(aliases.c.id == alias_id)).mappings().one()
        return _alias_record(row)

    def _artefact_id(self, conn: Connection, project: Project, kind: str, name: str) -> int:
        found = _find_artefact(conn, project, kind, name)
        if found is None:
            raise NotFound(
                f"no {kind} named {name!r} in project {project.name!r}", code="artefact_not_found"
            )
        return found

    def _version_row(
        self, conn: Connection, artefact_id: int, kind: str, name: str, ref: int | str | None
    ) -> RowMapping:
        query = _VERSIONS.where(artefacts.c.id == artefact_id)
        if ref is None:
            query = query.order_by(artefact_versions.c.number.desc()).limit(1)
        elif isinstance(ref, int):
            query = query.where(artefact_versions.c.number == ref)
        else:
            query = query.join(aliases, aliases.c.version_id == artefact_versions.c.id).where(
                aliases.c.artefact_id == artefact_id, aliases.c.name == ref
            )
        row = conn.execute(query).mappings().first()
        if row is None:
            what = f"version {ref}" if isinstance(ref, int) else f"alias {ref!r}"
            raise NotFound(f"{kind} {name!r} has no {what}", code="version_not_found")
        return row

    def _record(self, conn: Connection, row: RowMapping, kind: str, name: str) -> VersionRecord:
        links = [
            LineageLink(link.relation, link.target_kind, link.target_name, link.number)
            for link in conn.execute(_LINEAGE_OF_VERSION, {"version_id": row["id"]})
        ]
        pointing = conn.execute(_ALIASES_OF_VERSION, {"version_id": row["id"]}).scalars().all()
        return VersionRecord(
            kind,
            name,
            row["number"],
            row["content_hash"],
            row["content"],
            row["author"],
            row["message"],
            row["parent_number"],
            as_utc(row["created_at"]),
            links,
            list(pointing),
        )

    @staticmethod
    def _alias_query() -> Any:
        return (
            select(aliases, artefact_versions.c.number)
            .join(artefact_versions, artefact_versions.c.id == aliases.c.version_id)
            .order_by(aliases.c.name)
        )

    def _current_alias(self, conn: Connection, artefact_id: int, alias: str) -> RowMapping | None:
        return (
            conn.execute(
                self._alias_query().where(
                    aliases.c.artefact_id == artefact_id, aliases.c.name == alias
                )
            )
            .mappings()
            .first()
        )

    def _alias_row(
        self, conn: Connection, project: Project, kind: str, name: str, alias: str
    ) -> RowMapping:
        artefact_id = self._artefact_id(conn, project, kind, name)
        row = self._current_alias(conn, artefact_id, alias)
        if row is None:
            raise NotFound(f"{kind} {name!r} has no alias {alias!r}", code="alias_not_found")
        return row

    def _alias_map(self, conn: Connection, artefact_ids: list[int]) -> dict[int, dict[str, int]]:
        result: dict[int, dict[str, int]] = {}
        if not artefact_ids:
            return result
        for row in conn.execute(
            self._alias_query().where(aliases.c.artefact_id.in_(artefact_ids))
        ).mappings():
            result.setdefault(row["artefact_id"], {})[row["name"]] = row["number"]
        return result

    def _history(self, conn: Connection, alias_id: int) -> list[AliasChange]:
        from_v = artefact_versions.alias("from_v")
        to_v = artefact_versions.alias("to_v")
        rows = conn.execute(
            select(
                alias_history,
                from_v.c.number.label("from_number"),
                to_v.c.number.label("to_number"),
            )
            .outerjoin(from_v, from_v.c.id == alias_history.c.from_version_id)
            .join(to_v, to_v.c.id == alias_history.c.to_version_id)
            .where(alias_history.c.alias_id == alias_id)
            .order_by(alias_history.c.revision)
        ).mappings()
        return [
            AliasChange(
                row["revision"],
                row["action"],
                row["from_number"],
                row["to_number"],
                row["weight"],
                row["actor"],
                row["reason"],
                bool(row["override"]),
                as_utc(row["at"]),
            )
            for row in rows
        ]


def _find_artefact(conn: Connection, project: Project, kind: str, name: str) -> int | None:
    row = conn.execute(
        select(artefacts.c.id).where(
            artefacts.c.project_id == project.id,
            artefacts.c.kind == kind,
            artefacts.c.name == name,
        )
    ).first()
    return None if row is None else int(row.id)


def _audit(
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


def _alias_record(row: RowMapping) -> AliasRecord:
    return AliasRecord(
        row["name"],
        row["number"],
        row["weight"],
        row["revision"],
        row["updated_by"],
        as_utc(row["updated_at"]),
    )


def _check_alias_name(alias: str) -> None:
    if not re.fullmatch(ALIAS_PATTERN, alias) or alias == LATEST or is_version_number(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: start with a letter; use a-z, 0-9, - and _",
            code="invalid_alias",
        )
