"""Reading artefacts, versions and aliases inside a caller's transaction.

Shared by every registry operation, so that "not found" reads the same whichever operation
looked; the caller has checked the actor's scope and passes its project.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, MappingResult, RowMapping, Select, bindparam, select

from seamline.core.clock import as_utc
from seamline.core.errors import NotFound
from seamline.registry.identity import Project
from seamline.registry.records import AliasChange, AliasRecord, LineageLink, VersionRecord
from seamline.store.schema import alias_history, aliases, artefact_versions, artefacts, lineage

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


def find_artefact(conn: Connection, project: Project, kind: str, name: str) -> int | None:
    row = conn.execute(
        select(artefacts.c.id).where(
            artefacts.c.project_id == project.id,
            artefacts.c.kind == kind,
            artefacts.c.name == name,
        )
    ).first()
    return None if row is None else int(row.id)


def artefact_id(conn: Connection, project: Project, kind: str, name: str) -> int:
    found = find_artefact(conn, project, kind, name)
    if found is None:
        raise NotFound(
            f"no {kind} named {name!r} in project {project.name!r}", code="artefact_not_found"
        )
    return found


def resolve_version(
    conn: Connection, project: Project, kind: str, name: str, ref: int | str | None
) -> RowMapping:
    """``ref`` as :func:`~seamline.registry.refs.parse_ref` returns it."""
    # One query on the hot path (the SDK and the gateway resolve aliases through it);
    # the slower lookups below only run to say precisely what is missing.
    row = (
        conn.execute(
            _VERSION_BY[_ref_kind(ref)],
            {"project_id": project.id, "kind": kind, "name": name, "ref": ref},
        )
        .mappings()
        .first()
    )
    if row is None:
        row = version_row(conn, artefact_id(conn, project, kind, name), kind, name, ref)
    return row


def version_row(
    conn: Connection, artefact_id: int, kind: str, name: str, ref: int | str | None
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


def version_rows(conn: Connection, artefact_id: int) -> MappingResult:
    return conn.execute(
        _VERSIONS.where(artefacts.c.id == artefact_id).order_by(artefact_versions.c.number.desc())
    ).mappings()


def version_record(conn: Connection, row: RowMapping, kind: str, name: str) -> VersionRecord:
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


def alias_query() -> Select[Any]:
    return (
        select(aliases, artefact_versions.c.number)
        .join(artefact_versions, artefact_versions.c.id == aliases.c.version_id)
        .order_by(aliases.c.name)
    )


def current_alias(conn: Connection, artefact_id: int, alias: str) -> RowMapping | None:
    return (
        conn.execute(
            alias_query().where(aliases.c.artefact_id == artefact_id, aliases.c.name == alias)
        )
        .mappings()
        .first()
    )


def alias_row(conn: Connection, project: Project, kind: str, name: str, alias: str) -> RowMapping:
    row = current_alias(conn, artefact_id(conn, project, kind, name), alias)
    if row is None:
        raise NotFound(f"{kind} {name!r} has no alias {alias!r}", code="alias_not_found")
    return row


def alias_map(conn: Connection, artefact_ids: list[int]) -> dict[int, dict[str, int]]:
    result: dict[int, dict[str, int]] = {}
    if not artefact_ids:
        return result
    for row in conn.execute(
        alias_query().where(aliases.c.artefact_id.in_(artefact_ids))
    ).mappings():
        result.setdefault(row["artefact_id"], {})[row["name"]] = row["number"]
    return result


def alias_changes(conn: Connection, alias_id: int) -> list[AliasChange]:
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


def alias_record(row: RowMapping) -> AliasRecord:
    return AliasRecord(
        row["name"],
        row["number"],
        row["weight"],
        row["revision"],
        row["updated_by"],
        as_utc(row["updated_at"]),
    )
