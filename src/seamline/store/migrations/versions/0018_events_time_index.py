"""events by time

Revision ID: 0018
Revises: 0017

Reports over every project (cost by project) read the partial hours at their ends from raw
events by time alone.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_time", "events", ["time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_time", table_name="events")
