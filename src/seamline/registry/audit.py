"""The tamper-evident audit log: one hash chain per project.

Entry *n* stores ``hash_n = sha256(hash_{n-1} || canonical_json(entry_n))``, with a genesis
hash of zeros. Changing, removing or reordering any stored entry breaks every hash from it on,
and :func:`verify` names the first entry that no longer matches. Appends happen inside the
writer's transaction while it holds the project lock (see ``service.lock_project``), so the
chain never forks; ``(project_id, seq)`` is unique as a second line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from seamline.core.canonical import canonical_json, sha256_hex
from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.store.schema import audit_log

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: RowMapping) -> AuditEntry:
        return cls(
            seq=row["seq"],
            at=as_utc(row["at"]),
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            details=row["details"],
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": isoformat(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class ChainReport:
    """The outcome of :func:`verify`: ``first_bad_seq`` is ``None`` when the chain holds.

    ``head_hash`` is the last verified hash. A chain cannot show that entries were cut off its
    end; recording the head elsewhere (a ticket, a CI log) and comparing later can."""

    entries: int
    head_hash: str = GENESIS_HASH
    first_bad_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


# The columns an entry's hash covers, besides the previous hash.
HASHED_FIELDS = ("project_id", "seq", "at", "actor", "action", "target", "details")


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """``sha256(prev_hash || canonical_json(body))`` over :data:`HASHED_FIELDS`."""
    hashed = {field: body[field] for field in HASHED_FIELDS}
    hashed["at"] = isoformat(body["at"])
    return sha256_hex(prev_hash + canonical_json(hashed))


def append(
    conn: Connection,
    *,
    project_id: int,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> str:
    """Append an entry and return its hash; the caller holds the project lock inside its
    write transaction."""
    last = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash)
        .where(audit_log.c.project_id == project_id)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
    # Microseconds are the precision both SQLite and PostgreSQL keep, so the hash recomputes.
    body = {
        "project_id": project_id,
        "seq": seq,
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details or {},
    }
    digest = chain_hash(prev_hash, body)
    conn.execute(audit_log.insert().values(**body, prev_hash=prev_hash, hash=digest))
    return digest


def entries(
    conn: Connection, project_id: int, *, limit: int | None = None, action: str | None = None
) -> list[AuditEntry]:
    """Newest first."""
    query = (
        select(audit_log)
        .where(audit_log.c.project_id == project_id)
        .order_by(audit_log.c.seq.desc())
    )
    if action:
        query = query.where(audit_log.c.action.startswith(action))
    if limit:
        query = query.limit(limit)
    return [AuditEntry.from_row(row) for row in conn.execute(query).mappings()]


def verify(conn: Connection, project_id: int) -> ChainReport:
    """Recompute the chain from the genesis and report the first entry that does not match."""
    rows = conn.execute(
        select(audit_log).where(audit_log.c.project_id == project_id).order_by(audit_log.c.seq)
    ).mappings()
    prev_hash = GENESIS_HASH
    count = 0
    for expected_seq, row in enumerate(rows, start=1):
        count += 1
        entry = AuditEntry.from_row(row)
        if entry.seq != expected_seq:
            return ChainReport(count, prev_hash, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev_hash:
            return ChainReport(
                count, prev_hash, entry.seq, "its link to the previous entry is broken"
            )
        recomputed = chain_hash(prev_hash, {**row, "at": entry.at})
        if recomputed != entry.hash:
            return ChainReport(count, prev_hash, entry.seq, "its content does not match its hash")
        prev_hash = entry.hash
    return ChainReport(count, prev_hash)
