"""Pushing and reading versions: an artefact's content, one immutable version per change,
with the lineage of what a prompt references."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, select

from seamline.core.canonical import content_hash
from seamline.core.clock import as_utc, utcnow
from seamline.core.errors import InvalidInput, NotFound
from seamline.registry import rows
from seamline.registry.access import append_audit, lock_project, require, text_ok
from seamline.registry.identity import Actor, Project, Scope
from seamline.registry.loader import Draft, draft_from_mapping
from seamline.registry.records import ArtefactSummary, LineageLink, PushedItem, VersionRecord
from seamline.registry.refs import parse_ref
from seamline.registry.specs import REFERENCE, ArtefactKind, content_as_yaml
from seamline.store import Database
from seamline.store.database import insert_returning_id
from seamline.store.schema import artefact_versions, artefacts, lineage

# Referenced kinds first, so a prompt can link to a model pushed in the same batch.
_PUSH_ORDER = [kind.value for kind in ArtefactKind if kind != ArtefactKind.PROMPT] + ["prompt"]
# Fields of a prompt that point at other artefacts: (field, relation, target kind).
_PROMPT_REFERENCES = (("model", "model", "model"), ("eval_set", "eval_set", "eval_set"))


class _DryRun(Exception):
    """Raised inside a write transaction to roll back a dry run after computing its result."""

    def __init__(self, result: list[PushedItem]):
        self.result = result


class VersionOperations:
    db: Database

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
            listed = conn.execute(query).mappings().all()
            pointers = rows.alias_map(conn, [row["id"] for row in listed])
        return [
            ArtefactSummary(
                kind=row["kind"],
                name=row["name"],
                latest_version=row["n"],
                description=row["content"].get("description", ""),
                aliases=pointers.get(row["id"], {}),
                updated_at=as_utc(row["at"]),
            )
            for row in listed
        ]

    def get_version(
        self, actor: Actor, kind: str, name: str, ref: str | int | None = None
    ) -> VersionRecord:
        """A version by number, by alias, or the latest when ``ref`` is None."""
        require(actor, Scope.READ)
        parsed = parse_ref(ref)
        with self.db.read() as conn:
            row = rows.resolve_version(conn, actor.project, kind, name, parsed)
            return rows.version_record(conn, row, kind, name)

    def released_version(self, actor: Actor, kind: str, name: str) -> VersionRecord | None:
        """What serves when no version is named: the ``production`` version, else the
        latest; None when the project has no such artefact."""
        try:
            return self.get_version(actor, kind, name, "production")
        except NotFound:
            try:
                return self.get_version(actor, kind, name)
            except NotFound:
                return None

    def versions(self, actor: Actor, kind: str, name: str) -> list[VersionRecord]:
        require(actor, Scope.READ)
        with self.db.read() as conn:
            artefact_id = rows.artefact_id(conn, actor.project, kind, name)
            return [
                rows.version_record(conn, row, kind, name)
                for row in rows.version_rows(conn, artefact_id)
            ]

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
        text_ok(message, "message")
        ordered = sorted(drafts, key=lambda d: (_PUSH_ORDER.index(d.kind), d.name))
        try:
            with self.db.write() as conn:
                lock_project(conn, actor.project)
                result = [_push_one(conn, actor, draft, message) for draft in ordered]
                if dry_run:
                    raise _DryRun(result)
        except _DryRun as dry:
            return dry.result
        return result


def _push_one(conn: Connection, actor: Actor, draft: Draft, message: str) -> PushedItem:
    project = actor.project
    digest = content_hash(draft.content)
    found = rows.find_artefact(conn, project, draft.kind, draft.name)
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
    links = _references(conn, project, draft)
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
    append_audit(
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
    conn: Connection, project: Project, draft: Draft
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
        found = rows.find_artefact(conn, project, target_kind, target_name)
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
            target = rows.version_row(conn, found, target_kind, target_name, parse_ref(ref))
        except NotFound as exc:
            raise InvalidInput(
                f"{draft.source}: {field_name}: {exc.message}", code="reference_not_found"
            ) from None
        links.append(
            (LineageLink(relation, target_kind, target_name, target["number"]), target["id"])
        )
    return links
