"""call embeddings

Revision ID: 0014
Revises: 0013

Each call's input (and answer) embedded off the request path, as int8 unit vectors, for
semantic drift.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_embeddings",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prompt_name", sa.String(length=200), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("use_case", sa.String(length=200), nullable=True),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("input_vector", sa.LargeBinary(), nullable=False),
        sa.Column("output_vector", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_call_embeddings_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_call_embeddings")),
    )
    op.create_index(
        "ix_call_embeddings_project_time", "call_embeddings", ["project_id", "time"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_call_embeddings_project_time", table_name="call_embeddings")
    op.drop_table("call_embeddings")
