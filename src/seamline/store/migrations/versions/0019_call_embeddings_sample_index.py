"""call embeddings in sample order

Revision ID: 0019
Revises: 0018

The drift report reads a sample of each prompt's calls in a window: the first by request id
(random), through this index, without visiting the rest of the window.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["project_id", "model", "prompt_name", "use_case", "request_id", "time"]


def upgrade() -> None:
    # No prompt or use case is "" from now on (an equality the index serves in order).
    for column in ("prompt_name", "use_case"):
        op.execute(f"UPDATE call_embeddings SET {column} = '' WHERE {column} IS NULL")
    op.create_index("ix_call_embeddings_sample", "call_embeddings", COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index("ix_call_embeddings_sample", table_name="call_embeddings")
