"""Who may move an alias, and what a version needs before it may.

Each project may set a policy per alias name. Without one, ``production`` and ``canary``
(which serves a share of production's calls) ask for one approval by someone other than the
version's author and a passing gate; every other alias asks only for the ``write`` scope.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from seamline.core.clock import utcnow
from seamline.core.errors import InvalidInput
from seamline.registry import audit
from seamline.registry.identity import Project, Scope
from seamline.registry.refs import LATEST, is_version_number
from seamline.store.schema import alias_policies

PRODUCTION = "production"
CANARY = "canary"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"


def check_alias_name(alias: str) -> None:
    if not re.fullmatch(ALIAS_PATTERN, alias) or alias == LATEST or is_version_number(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: start with a letter; use a-z, 0-9, - and _",
            code="invalid_alias",
        )


@dataclass(frozen=True)
class AliasPolicy:
    alias: str
    allowed_scopes: list[str] = field(default_factory=lambda: [Scope.ADMIN, Scope.WRITE])
    required_approvals: int = 0
    approver_must_differ: bool = False
    require_gate: bool = False
    is_default: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "allowed_scopes": [str(s) for s in self.allowed_scopes]}


def default_policy(alias: str) -> AliasPolicy:
    # A canary serves a share of production's calls, so by default it is released like
    # production: otherwise weight 100 would put an unapproved version on all of them.
    if alias in (PRODUCTION, CANARY):
        return AliasPolicy(
            alias, required_approvals=1, approver_must_differ=True, require_gate=True
        )
    return AliasPolicy(alias)


def get_policy(conn: Connection, project: Project, alias: str) -> AliasPolicy:
    row = (
        conn.execute(
            select(alias_policies).where(
                alias_policies.c.project_id == project.id, alias_policies.c.alias == alias
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return default_policy(alias)
    return AliasPolicy(
        alias=alias,
        allowed_scopes=list(row["allowed_scopes"]),
        required_approvals=row["required_approvals"],
        approver_must_differ=row["approver_must_differ"],
        require_gate=row["require_gate"],
        is_default=False,
    )


def list_policies(conn: Connection, project: Project) -> list[AliasPolicy]:
    rows = conn.execute(
        select(alias_policies.c.alias)
        .where(alias_policies.c.project_id == project.id)
        .order_by(alias_policies.c.alias)
    )
    names = {row.alias for row in rows} | {PRODUCTION}
    return [get_policy(conn, project, name) for name in sorted(names)]


def set_policy(
    conn: Connection, project: Project, policy: AliasPolicy, *, actor: str
) -> AliasPolicy:
    if policy.required_approvals < 0:
        raise InvalidInput("required approvals cannot be negative")
    for scope in policy.allowed_scopes:
        Scope(scope)  # validated by the caller; a wrong value here is a bug
    values = {
        "allowed_scopes": [str(s) for s in policy.allowed_scopes],
        "required_approvals": policy.required_approvals,
        "approver_must_differ": policy.approver_must_differ,
        "require_gate": policy.require_gate,
        "updated_at": utcnow(),
    }
    updated = conn.execute(
        alias_policies.update()
        .where(alias_policies.c.project_id == project.id, alias_policies.c.alias == policy.alias)
        .values(**values)
    ).rowcount
    if not updated:
        conn.execute(
            alias_policies.insert().values(project_id=project.id, alias=policy.alias, **values)
        )
    saved = get_policy(conn, project, policy.alias)
    details = saved.to_dict()
    details.pop("is_default")
    audit.append(
        conn,
        project_id=project.id,
        actor=actor,
        action="policy.set",
        target=policy.alias,
        details=details,
    )
    return saved
