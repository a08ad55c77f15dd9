"""``/api/v1``: artefacts, versions, aliases, approvals, audit, keys and policies.

Thin on purpose: each route takes the actor the Admission middleware authenticated (before
the body was read), calls the registry and returns its record's JSON form; the registry
enforces scopes, policies and project isolation.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from seamline.api.deps import ActorDep, RegistryDep
from seamline.registry.anchors import Anchor
from seamline.registry.identity import parse_scopes
from seamline.registry.policy import AliasPolicy
from seamline.registry.specs import ArtefactKind

router = APIRouter(prefix="/api/v1")

MAX_PUSH_ARTEFACTS = 500
MAX_ANCHORS = 10_000  # a year of hourly anchors; checking one costs a dictionary lookup


class PushBody(BaseModel):
    artefacts: list[dict[str, Any]] = Field(
        description="artefact documents, as in the YAML files", max_length=MAX_PUSH_ARTEFACTS
    )
    message: Annotated[str, Field(max_length=10_000)] = ""
    dry_run: bool = False


class AliasMoveBody(BaseModel):
    version: int | str = Field(description="a version number, or another alias to copy")
    weight: Annotated[int, Field(ge=0, le=100)] | None = None
    expected_version: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="fail with 409 unless the alias points here (0: unset)"
    )
    override: bool = False
    reason: Annotated[str, Field(max_length=10_000)] | None = None


class RollbackBody(BaseModel):
    reason: str | None = None


class ApprovalBody(BaseModel):
    alias: str = "production"
    comment: Annotated[str, Field(max_length=10_000)] | None = None


class KeyBody(BaseModel):
    scopes: list[str]
    name: Annotated[str, Field(min_length=1, max_length=200)] = "api"
    owner: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="default: the calling key's owner"
    )
    models: list[str] | None = Field(
        default=None, description="model names or patterns it may call (default: any)"
    )


class PolicyBody(BaseModel):
    allowed_scopes: list[str] = ["admin", "write"]
    required_approvals: Annotated[int, Field(ge=0, le=10)] = 0
    approver_must_differ: bool = False
    require_gate: bool = False


class AuditAnchorsBody(BaseModel):
    anchors: list[dict[str, Any]] = Field(
        description="anchors kept outside seamline, as POST /api/v1/audit/anchor returned them",
        min_length=1,
        max_length=MAX_ANCHORS,
    )


@router.get("/whoami")
def whoami(actor: ActorDep) -> dict[str, Any]:
    return {
        "user": actor.user,
        "project": actor.project.name,
        "key": actor.key_id,
        "scopes": sorted(s.value for s in actor.scopes),
    }


@router.get("/artefacts")
def list_artefacts(
    actor: ActorDep, registry: RegistryDep, kind: ArtefactKind | None = None
) -> dict[str, Any]:
    items = registry.list_artefacts(actor, kind.value if kind else None)
    return {"data": [item.to_dict() for item in items]}


@router.post("/artefacts")
def push_artefacts(actor: ActorDep, registry: RegistryDep, body: PushBody) -> dict[str, Any]:
    """Push artefact documents: all are validated first, and nothing is written unless all
    are valid. Identical content creates no version."""
    pushed = registry.push_documents(
        actor, body.artefacts, message=body.message, dry_run=body.dry_run
    )
    return {"dry_run": body.dry_run, "data": [item.to_dict() for item in pushed]}


@router.get("/artefacts/{kind}/{name}/versions")
def list_versions(
    actor: ActorDep, registry: RegistryDep, kind: ArtefactKind, name: str
) -> dict[str, Any]:
    return {"data": [v.to_dict() for v in registry.versions(actor, kind.value, name)]}


@router.get("/artefacts/{kind}/{name}/versions/{ref}")
def get_version(
    actor: ActorDep, registry: RegistryDep, kind: ArtefactKind, name: str, ref: str
) -> dict[str, Any]:
    """``ref`` is a version number (``3`` or ``v3``), an alias, or ``latest``."""
    return registry.get_version(actor, kind.value, name, ref).to_dict()


@router.get("/artefacts/{kind}/{name}/diff")
def diff_versions(
    actor: ActorDep,
    registry: RegistryDep,
    kind: ArtefactKind,
    name: str,
    a: Annotated[str, Query()],
    b: Annotated[str, Query()],
) -> dict[str, Any]:
    return {"diff": registry.diff(actor, kind.value, name, a, b)}


@router.get("/artefacts/{kind}/{name}/aliases")
def list_aliases(
    actor: ActorDep, registry: RegistryDep, kind: ArtefactKind, name: str
) -> dict[str, Any]:
    return {"data": [a.to_dict() for a in registry.aliases(actor, kind.value, name)]}


@router.put("/artefacts/{kind}/{name}/aliases/{alias}")
def move_alias(
    actor: ActorDep,
    registry: RegistryDep,
    kind: ArtefactKind,
    name: str,
    alias: str,
    body: AliasMoveBody,
) -> dict[str, Any]:
    record = registry.move_alias(
        actor,
        kind.value,
        name,
        alias,
        body.version,
        weight=body.weight,
        expected_version=body.expected_version,
        override=body.override,
        reason=body.reason,
    )
    return record.to_dict()


@router.get("/artefacts/{kind}/{name}/aliases/{alias}/history")
def alias_history(
    actor: ActorDep, registry: RegistryDep, kind: ArtefactKind, name: str, alias: str
) -> dict[str, Any]:
    changes = registry.alias_history(actor, kind.value, name, alias)
    return {"data": [c.to_dict() for c in changes]}


@router.post("/artefacts/{kind}/{name}/aliases/{alias}/rollback")
def rollback_alias(
    actor: ActorDep,
    registry: RegistryDep,
    kind: ArtefactKind,
    name: str,
    alias: str,
    body: Annotated[RollbackBody | None, Body()] = None,
) -> dict[str, Any]:
    reason = body.reason if body else None
    return registry.rollback(actor, kind.value, name, alias, reason=reason).to_dict()


@router.post("/artefacts/{kind}/{name}/versions/{ref}/approvals")
def approve_version(
    actor: ActorDep,
    registry: RegistryDep,
    kind: ArtefactKind,
    name: str,
    ref: str,
    body: Annotated[ApprovalBody | None, Body()] = None,
) -> dict[str, Any]:
    body = body or ApprovalBody()
    return registry.approve(actor, kind.value, name, ref, alias=body.alias, comment=body.comment)


@router.get("/audit")
def audit_log(
    actor: ActorDep,
    registry: RegistryDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    action: str | None = None,
) -> dict[str, Any]:
    entries = registry.audit_log(actor, limit=limit, action=action)
    return {"data": [e.to_dict() for e in entries]}


@router.get("/audit/verify")
def audit_verify(actor: ActorDep, registry: RegistryDep) -> dict[str, Any]:
    """Recompute the project's keyed hash chain; ``ok`` is false naming the first bad entry."""
    return registry.verify_audit(actor).to_dict()


@router.post("/audit/verify")
def audit_verify_against_anchors(
    actor: ActorDep, registry: RegistryDep, body: AuditAnchorsBody
) -> dict[str, Any]:
    """Recompute the chain and check that it still holds every entry the anchors recorded,
    unchanged: the chain alone cannot show that entries were cut off its end."""
    anchors = [Anchor.from_dict(anchor) for anchor in body.anchors]
    return registry.verify_audit(actor, anchors=anchors).to_dict()


@router.post("/audit/anchor")
def audit_anchor(actor: ActorDep, registry: RegistryDep) -> dict[str, Any]:
    """The chain's head (entry count, hash, time), signed with the installation secret: keep
    it where the database's writers cannot reach it, and verify against it later."""
    return registry.anchor_audit(actor).to_dict()


@router.get("/keys")
def get_keys(actor: ActorDep, registry: RegistryDep) -> dict[str, Any]:
    return {"data": [k.to_dict() for k in registry.list_keys(actor)]}


@router.post("/keys", status_code=201)
def post_key(actor: ActorDep, registry: RegistryDep, body: KeyBody) -> dict[str, Any]:
    """Create a key in the caller's project. The plaintext is in this response only."""
    plaintext, info = registry.create_key(
        actor,
        owner=body.owner or actor.user,
        scopes=parse_scopes(body.scopes),
        name=body.name,
        models=body.models,
    )
    return {**info.to_dict(), "key": plaintext}


@router.delete("/keys/{key_id}")
def delete_key(actor: ActorDep, registry: RegistryDep, key_id: str) -> dict[str, Any]:
    return registry.revoke_key(actor, key_id).to_dict()


@router.get("/policies")
def get_policies(actor: ActorDep, registry: RegistryDep) -> dict[str, Any]:
    return {"data": [p.to_dict() for p in registry.list_policies(actor)]}


@router.put("/policies/{alias}")
def put_policy(
    actor: ActorDep, registry: RegistryDep, alias: str, body: PolicyBody
) -> dict[str, Any]:
    scopes = sorted(s.value for s in parse_scopes(body.allowed_scopes))
    policy = AliasPolicy(
        alias,
        scopes,
        body.required_approvals,
        body.approver_must_differ,
        body.require_gate,
        is_default=False,
    )
    return registry.set_policy(actor, policy).to_dict()
