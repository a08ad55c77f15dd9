"""audit chain keyed with HMAC

Revision ID: 0005
Revises: 0004

Until this revision an audit entry's hash was ``sha256(prev_hash || canonical entry)``, which
anyone able to write the database could recompute after deleting or changing an entry. From
here on it is ``HMAC-SHA256(chain key, prev_hash || canonical entry)``, the chain key derived
from the installation secret, which lives outside the database (``registry/audit.py``). This
migration re-keys every existing chain, so it needs the secret: ``seamline init`` and
``seamline db upgrade`` pass it (``store/migrate.py``); a database without audit entries
needs none.

Only the part of a chain that still verifies under sha256 is re-keyed. An entry that was
already wrong keeps its old hash, so verification after the upgrade reports the break at the
same entry: the migration must not launder a tampered chain into a valid keyed one.

The hashes are computed here rather than by ``registry/audit.py``: a migration must keep
computing what it computed when it was released (and ``store`` may not import the registry).
"""

import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from seamline.core.canonical import canonical_json
from seamline.core.clock import isoformat

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64
CHAIN_KEY_PURPOSE = b"seamline audit chain v1"
HASHED_FIELDS = ("project_id", "seq", "at", "actor", "action", "target", "details")
# (previous hash, canonical entry) -> this entry's hash
ChainHash = Callable[[str, str], str]

_audit_log = sa.table(
    "audit_log",
    sa.column("id", sa.Integer),
    sa.column("project_id", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("target", sa.String),
    sa.column("details", sa.JSON),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)
# Revision 0001's trigger, recreated after the rewrite.
_SQLITE_NO_UPDATE = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
)


def upgrade() -> None:
    rows = _entries()
    if rows:
        _rechain(rows, verified_by=_sha256, rehashed_by=_keyed(_secret()))


def downgrade() -> None:
    rows = _entries()
    if rows:
        _rechain(rows, verified_by=_keyed(_secret()), rehashed_by=_sha256)


def _sha256(prev_hash: str, entry: str) -> str:
    return hashlib.sha256((prev_hash + entry).encode()).hexdigest()


def _keyed(secret: bytes) -> ChainHash:
    key = hmac.new(secret, CHAIN_KEY_PURPOSE, hashlib.sha256).digest()

    def chain_hash(prev_hash: str, entry: str) -> str:
        return hmac.new(key, (prev_hash + entry).encode(), hashlib.sha256).hexdigest()

    return chain_hash


def _secret() -> bytes:
    secret: bytes | None = context.config.attributes.get("secret")
    if secret is None:
        raise RuntimeError(
            "revision 0005 re-keys the audit log with the installation secret: run it with "
            "'seamline db upgrade', or pass secret= to seamline.store.migrate.upgrade"
        )
    return secret


def _entries() -> list[sa.RowMapping]:
    query = sa.select(_audit_log).order_by(_audit_log.c.project_id, _audit_log.c.seq)
    return list(op.get_bind().execute(query).mappings())


def _canonical(row: sa.RowMapping) -> str:
    hashed: dict[str, Any] = {name: row[name] for name in HASHED_FIELDS}
    hashed["at"] = isoformat(row["at"])
    return canonical_json(hashed)


def _rechain(rows: list[sa.RowMapping], *, verified_by: ChainHash, rehashed_by: ChainHash) -> None:
    """Rehash each project's chain from its genesis for as long as it verifies."""
    changes = []
    for _, chain in groupby(rows, key=lambda row: row["project_id"]):
        old_prev = new_prev = GENESIS_HASH
        for expected_seq, row in enumerate(chain, start=1):
            entry = _canonical(row)
            if (
                row["seq"] != expected_seq
                or row["prev_hash"] != old_prev
                or verified_by(old_prev, entry) != row["hash"]
            ):
                break
            new_hash = rehashed_by(new_prev, entry)
            changes.append({"row_id": row["id"], "new_prev": new_prev, "new_hash": new_hash})
            old_prev, new_prev = row["hash"], new_hash
    if not changes:
        return
    rewrite = (
        sa.update(_audit_log)
        .where(_audit_log.c.id == sa.bindparam("row_id"))
        .values(prev_hash=sa.bindparam("new_prev"), hash=sa.bindparam("new_hash"))
    )
    with _updates_allowed():
        op.get_bind().execute(rewrite, changes)


@contextmanager
def _updates_allowed() -> Iterator[None]:
    """Lift revision 0001's refusal of UPDATE for this rewrite only. It happens inside the
    migration's transaction, so no other connection ever sees the table unguarded (and an
    error rolls the lifting back with the rest)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        yield
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    else:
        # IF EXISTS: whoever tampered by hand may have dropped it; it comes back either way.
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        yield
        op.execute(_SQLITE_NO_UPDATE)
