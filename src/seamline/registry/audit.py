"""The tamper-evident audit log: one keyed hash chain per project.

Entry *n* stores ``hash_n = HMAC-SHA256(key, hash_{n-1} || canonical_json(entry_n))``, with a
genesis hash of zeros. The key is derived from the installation secret, which lives outside
the database (``$SEAMLINE_HOME/secret.key`` or ``SEAMLINE_SECRET_KEY``): someone who can write
the database but not read the secret cannot recompute a chain, so changing, removing or
reordering any stored entry breaks every hash from it on, and :func:`verify` names the first
entry that no longer matches. (Until revision 0005 the hash was a plain sha256, which anyone
could recompute; that migration re-keyed existing chains.)

What a chain alone cannot show is that rows were cut off its end. :func:`anchor` signs the
head (entry count and hash) for keeping outside the database (see
:mod:`seamline.registry.anchors`), and :func:`verify` checks the chain against such anchors.

Appends happen inside the writer's transaction while it holds the project lock (see
``access.lock_project``), so the chain never forks; ``(project_id, seq)`` is unique as a
second line of defence.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from seamline.core.canonical import canonical_json
from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import Conflict
from seamline.registry.anchors import Anchor
from seamline.store import Database
from seamline.store.schema import audit_log

GENESIS_HASH = "0" * 64
# One secret, several purposes: each gets its own key, so a value MACed for one purpose (an
# API key's hash, an anchor) can never stand in for another (a chain hash).
CHAIN_KEY_PURPOSE = b"seamline audit chain v1"
ANCHOR_KEY_PURPOSE = b"seamline audit anchor v1"
_KEYS_OPTION = "seamline_audit_keys"


@dataclass(frozen=True)
class ChainKeys:
    """The audit's keys, derived from the installation secret; ``repr`` never shows them."""

    chain: bytes = field(repr=False)
    anchor: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: bytes) -> ChainKeys:
        return cls(_mac(secret, CHAIN_KEY_PURPOSE), _mac(secret, ANCHOR_KEY_PURPOSE))


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def use_secret(db: Database, secret: bytes) -> None:
    """Key every chain written or verified through ``db`` with the installation secret.

    The keys ride on the engine's execution options instead of through every function that
    appends an entry (projects, keys, policies and releases append from three modules), and
    :func:`append` refuses to write without them, so no entry is ever written unkeyed.
    :class:`~seamline.registry.Registry` calls this when it is created. A second, different
    secret for the same database is refused: one chain under two keys verifies under neither.
    """
    keys = ChainKeys.from_secret(secret)
    bound = db.engine.get_execution_options().get(_KEYS_OPTION)
    if bound is not None and bound != keys:
        raise ValueError("this database's audit chain is already keyed with another secret")
    db.engine.update_execution_options(**{_KEYS_OPTION: keys})


def _keys(conn: Connection) -> ChainKeys:
    keys: ChainKeys | None = conn.get_execution_options().get(_KEYS_OPTION)
    if keys is None:
        raise RuntimeError(
            "the audit chain has no key: open the database through Registry, or call "
            "audit.use_secret(db, secret) first"
        )
    return keys


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
    """The outcome of :func:`verify`: ``ok`` when the chain holds (and matches its anchors).

    ``head_hash`` is the last verified hash; ``first_bad_seq`` the first entry found wrong or
    missing (``None`` when the problem is an anchor itself); ``anchor`` the latest anchor
    checked, if any."""

    entries: int
    head_hash: str = GENESIS_HASH
    first_bad_seq: int | None = None
    problem: str = ""
    anchor: Anchor | None = None

    @property
    def ok(self) -> bool:
        return not self.problem

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "anchor": self.anchor.to_dict() if self.anchor else None,
        }


# The columns an entry's hash covers, besides the previous hash.
HASHED_FIELDS = ("project_id", "seq", "at", "actor", "action", "target", "details")


def chain_hash(key: bytes, prev_hash: str, body: dict[str, Any]) -> str:
    """``HMAC-SHA256(key, prev_hash || canonical_json(body))`` over :data:`HASHED_FIELDS`."""
    hashed = {name: body[name] for name in HASHED_FIELDS}
    hashed["at"] = isoformat(body["at"])
    return _mac(key, (prev_hash + canonical_json(hashed)).encode()).hex()


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
    key = _keys(conn).chain
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
    digest = chain_hash(key, prev_hash, body)
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


def verify(conn: Connection, project_id: int, *, anchors: Sequence[Anchor] = ()) -> ChainReport:
    """Recompute the chain from the genesis and report the first entry that does not match.

    With ``anchors`` (this project's, kept outside the database) also check that the chain
    still holds every entry each one recorded, unchanged: fewer entries means rows were cut
    off the end; another hash at an anchored entry means the chain was cut and grown again,
    or rewritten by someone holding the secret. Every anchor is checked, not only the latest:
    each is independent evidence, and checking one costs a dictionary lookup."""
    keys = _keys(conn)
    rows = conn.execute(
        select(audit_log).where(audit_log.c.project_id == project_id).order_by(audit_log.c.seq)
    ).mappings()
    latest = max(anchors, key=lambda a: a.entries, default=None)
    anchored = {a.entries for a in anchors}
    hash_at: dict[int, str] = {}
    prev_hash = GENESIS_HASH
    count = 0
    for expected_seq, row in enumerate(rows, start=1):
        count += 1
        entry = AuditEntry.from_row(row)
        if entry.seq != expected_seq:
            return ChainReport(
                count, prev_hash, expected_seq, f"entry {expected_seq} is missing", latest
            )
        if entry.prev_hash != prev_hash:
            return ChainReport(
                count, prev_hash, entry.seq, "its link to the previous entry is broken", latest
            )
        if chain_hash(keys.chain, prev_hash, {**row, "at": entry.at}) != entry.hash:
            return ChainReport(
                count, prev_hash, entry.seq, "its content does not match its hash", latest
            )
        if entry.seq in anchored:
            hash_at[entry.seq] = entry.hash
        prev_hash = entry.hash
    for recorded in sorted(anchors, key=lambda a: a.entries):
        bad_seq, problem = _anchor_problem(keys.anchor, project_id, recorded, count, hash_at)
        if problem:
            return ChainReport(count, prev_hash, bad_seq, problem, latest)
    return ChainReport(count, prev_hash, anchor=latest)


def _anchor_problem(
    key: bytes, project_id: int, anchor: Anchor, count: int, hash_at: dict[int, str]
) -> tuple[int | None, str]:
    """The first entry an anchor shows wrong and why, or ``(None, "")`` when it holds."""
    made = f"the anchor of {isoformat(anchor.at)}"
    if not hmac.compare_digest(anchor.mac, _anchor_mac(key, anchor)):
        return None, f"{made} is not authentic: forged, or made with another installation secret"
    if anchor.project_id != project_id:
        return None, f"{made} is for project {anchor.project!r} of another database"
    if anchor.entries > count:
        first, last = count + 1, anchor.entries
        gone = f"entry {first} is" if first == last else f"entries {first} to {last} are"
        return count + 1, (
            f"{gone} missing: {made} recorded {anchor.entries} entries and the chain has "
            f"{count}, so it was truncated"
        )
    if anchor.entries and hash_at[anchor.entries] != anchor.head_hash:
        return anchor.entries, (
            f"it differs from {made}: the chain was cut and grown again, or rewritten"
        )
    return None, ""


def anchor(
    conn: Connection, project_id: int, project: str, *, anchors: Sequence[Anchor] = ()
) -> Anchor:
    """The chain's head, signed, for keeping outside the database.

    The chain is verified first, against ``anchors`` too: an anchor vouches for what it
    records, so a broken or truncated chain is refused (:class:`Conflict`)."""
    report = verify(conn, project_id, anchors=anchors)
    if not report.ok:
        where = f"entry {report.first_bad_seq}: " if report.first_bad_seq else ""
        raise Conflict(
            f"not anchoring a broken audit chain ({where}{report.problem})",
            code="audit_chain_broken",
        )
    head = Anchor(project, project_id, report.entries, report.head_hash, utcnow())
    return head.with_mac(_anchor_mac(_keys(conn).anchor, head))


def _anchor_mac(key: bytes, anchor: Anchor) -> str:
    return _mac(key, anchor.signed_text().encode()).hex()
