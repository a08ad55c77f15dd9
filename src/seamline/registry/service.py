"""The registry: push versions, move aliases under policies, approve, roll back, audit.

Every method takes the :class:`Actor` doing it and works inside that actor's project only:
a name in another project is simply "not found". Every mutation runs in one write
transaction that holds the project lock, changes the rows and appends its audit entries, so
either all of it lands or none does.
"""

from __future__ import annotations

from seamline.registry import audit
from seamline.registry.administration import AdministrationOperations, AuditOperations
from seamline.registry.gate import RecordedRunsGate, ReleaseGate
from seamline.registry.releases import ReleaseOperations
from seamline.registry.sessions import SessionOperations
from seamline.registry.versions import VersionOperations
from seamline.store import Database


class Registry(
    AdministrationOperations,
    VersionOperations,
    ReleaseOperations,
    AuditOperations,
    SessionOperations,
):
    """The registry's operations over one database; cheap to create, safe to share."""

    def __init__(self, db: Database, *, key_secret: bytes, gate: ReleaseGate | None = None) -> None:
        self.db = db
        self.key_secret = key_secret
        audit.use_secret(db, key_secret)
        self.gate = gate or RecordedRunsGate(db)
