"""The database: schema, migrations and connections, for SQLite and PostgreSQL alike.

Knows no domain: the registry and the layers above it decide what rows mean.
"""

from seamline.store.database import Database
from seamline.store.schema import metadata

__all__ = ["Database", "metadata"]
