"""Releasing versions: aliases moved under their policies (scopes, approvals, the gate),
approvals recorded, and rollbacks along an alias's history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, func, select
from sqlalchemy.exc import IntegrityError

from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import Conflict, InvalidInput, PermissionDenied
from seamline.registry import rows
from seamline.registry.access import append_audit, lock_project, require, text_ok
from seamline.registry.gate import GateSubject, ReleaseGate
from seamline.registry.identity import Actor, Scope
from seamline.registry.policy import CANARY, check_alias_name, get_policy
from seamline.registry.records import AliasChange, AliasRecord
from seamline.registry.refs import parse_ref
from seamline.store import Database
from seamline.store.database import insert_returning_id
from seamline.store.schema import alias_history, aliases, approvals, artefact_versions


class ReleaseOperations:
    db: Database
    gate: ReleaseGate

    def aliases(self, actor: Actor, kind: str, name: str) -> list[AliasRecord]:
        require(actor, Scope.READ)
        with self.db.read() as conn:
            artefact_id = rows.artefact_id(conn, actor.project, kind, name)
            listed = conn.execute(
                rows.alias_query().where(aliases.c.artefact_id == artefact_id)
            ).mappings()
            return [rows.alias_record(row) for row in listed]

    def alias_history(self, actor: Actor, kind: str, name: str, alias: str) -> list[AliasChange]:
        """Oldest first."""
        require(actor, Scope.READ)
        with self.db.read() as conn:
            alias_row = rows.alias_row(conn, actor.project, kind, name, alias)
            return rows.alias_changes(conn, alias_row["id"])

    def approvals(self, actor: Actor, kind: str, name: str) -> list[dict[str, Any]]:
        """Every approval given to the artefact's versions, newest first."""
        require(actor, Scope.READ)
        with self.db.read() as conn:
            artefact_id = rows.artefact_id(conn, actor.project, kind, name)
            listed = conn.execute(
                select(
                    artefact_versions.c.number,
                    approvals.c.alias,
                    approvals.c.approver,
                    approvals.c.comment,
                    approvals.c.created_at,
                )
                .join(artefact_versions, artefact_versions.c.id == approvals.c.version_id)
                .where(artefact_versions.c.artefact_id == artefact_id)
                .order_by(approvals.c.created_at.desc())
            ).all()
        return [
            {
                "version": row.number,
                "alias": row.alias,
                "approver": row.approver,
                "comment": row.comment,
                "at": isoformat(as_utc(row.created_at)),
            }
            for row in listed
        ]

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
        check_alias_name(alias)
        text_ok(reason, "reason")
        if weight is not None and not 0 <= weight <= 100:
            raise InvalidInput("weight must be between 0 and 100", param="weight")
        if override and not (reason and reason.strip()):
            raise InvalidInput("an override needs a reason (--reason TEXT)", param="reason")
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            artefact_id = rows.artefact_id(conn, actor.project, kind, name)
            target = rows.version_row(conn, artefact_id, kind, name, parse_ref(ref))
            policy = get_policy(conn, actor.project, alias)
            if not any(actor.can(Scope(s)) for s in policy.allowed_scopes):
                raise PermissionDenied(
                    f"moving {alias!r} needs one of the scopes {', '.join(policy.allowed_scopes)}",
                    code="missing_scope",
                )
            current = rows.current_alias(conn, artefact_id, alias)
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
                return rows.alias_record(current)
            _check_approvals(
                conn, target, alias, policy.required_approvals, policy.approver_must_differ
            )
            overridden = False
            if policy.require_gate:
                overridden = self._check_gate(
                    conn, actor, kind, name, target, alias, override, reason
                )
            record = _point_alias(
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
            append_audit(
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
            current = rows.alias_row(conn, actor.project, kind, name, alias)
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
            record = _point_alias(
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
            append_audit(
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
        check_alias_name(alias)
        text_ok(comment, "comment")
        with self.db.write() as conn:
            lock_project(conn, actor.project)
            artefact_id = rows.artefact_id(conn, actor.project, kind, name)
            version = rows.version_row(conn, artefact_id, kind, name, parse_ref(ref))
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
            append_audit(
                conn,
                actor,
                action="version.approve",
                target=f"{kind}:{name}@v{version['number']}",
                details={"alias": alias, "comment": comment},
            )
            count = _approval_count(conn, version, alias, policy.approver_must_differ)
        return {
            "name": name,
            "version": version["number"],
            "alias": alias,
            "approver": actor.user,
            "approvals": count,
            "required": policy.required_approvals,
        }

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
            actor.project.id,
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
        append_audit(
            conn,
            actor,
            action="gate.override",
            target=f"{kind}:{name}@v{target['number']}",
            details={"alias": alias, "reason": reason, "gate": verdict.reason},
        )
        return True


def _check_approvals(
    conn: Connection, version: RowMapping, alias: str, required: int, must_differ: bool
) -> None:
    if required <= 0:
        return
    have = _approval_count(conn, version, alias, must_differ)
    if have < required:
        raise PermissionDenied(
            f"v{version['number']} needs {required} approval(s) for {alias!r} and has "
            f"{have}: run 'seamline prompts approve' as another user first",
            code="approval_required",
        )


def _approval_count(conn: Connection, version: RowMapping, alias: str, must_differ: bool) -> int:
    query = (
        select(func.count())
        .select_from(approvals)
        .where(approvals.c.version_id == version["id"], approvals.c.alias == alias)
    )
    if must_differ:
        query = query.where(approvals.c.approver != version["author"])
    return int(conn.execute(query).scalar_one())


def _point_alias(
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
    row = conn.execute(rows.alias_query().where(aliases.c.id == alias_id)).mappings().one()
    return rows.alias_record(row)
