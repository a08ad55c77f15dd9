"""What the registry hands back: frozen records with a JSON form for the API and ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seamline.core.clock import isoformat
from seamline.registry.prompt import Prompt


@dataclass(frozen=True)
class LineageLink:
    relation: str
    kind: str
    name: str
    version: int | None  # None: a name the gateway routes, not a registry artefact

    def to_dict(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
        }


@dataclass(frozen=True)
class VersionRecord:
    kind: str
    name: str
    number: int
    content_hash: str
    content: dict[str, Any]
    author: str
    message: str
    parent: int | None
    created_at: datetime
    lineage: list[LineageLink] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.number,
            "content_hash": self.content_hash,
            "author": self.author,
            "message": self.message,
            "parent": self.parent,
            "created_at": isoformat(self.created_at),
            "aliases": self.aliases,
            "lineage": [link.to_dict() for link in self.lineage],
            "content": self.content,
        }

    def as_prompt(self, alias: str | None = None) -> Prompt:
        return Prompt.from_content(
            self.content, version=self.number, content_hash=self.content_hash, alias=alias
        )


@dataclass(frozen=True)
class AliasRecord:
    name: str
    version: int
    weight: int | None
    revision: int
    updated_by: str
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.name,
            "version": self.version,
            "weight": self.weight,
            "revision": self.revision,
            "updated_by": self.updated_by,
            "updated_at": isoformat(self.updated_at),
        }


@dataclass(frozen=True)
class AliasChange:
    revision: int
    action: str
    from_version: int | None
    to_version: int
    weight: int | None
    actor: str
    reason: str | None
    override: bool
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "weight": self.weight,
            "actor": self.actor,
            "reason": self.reason,
            "override": self.override,
            "at": isoformat(self.at),
        }


@dataclass(frozen=True)
class ArtefactSummary:
    kind: str
    name: str
    latest_version: int
    description: str
    aliases: dict[str, int]
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "latest_version": self.latest_version,
            "description": self.description,
            "aliases": self.aliases,
            "updated_at": isoformat(self.updated_at),
        }


@dataclass(frozen=True)
class PushedItem:
    kind: str
    name: str
    source: str
    status: str  # "created" or "unchanged"
    version: int
    previous: int | None
    content_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "source": self.source,
            "status": self.status,
            "version": self.version,
            "previous": self.previous,
            "content_hash": self.content_hash,
        }
