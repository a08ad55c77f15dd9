"""rag assessments

Revision ID: 0012
Revises: 0011

Live RAG calls scored off the request path, with the stage blamed and the evidence.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rag_assessments",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("prompt", sa.String(length=200), nullable=True),
        sa.Column("index_version", sa.String(length=200), nullable=False),
        sa.Column("attribution", sa.String(length=16), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_rag_assessments_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_rag_assessments")),
    )
    op.create_index(
        "ix_rag_assessments_project_time",
        "rag_assessments",
        ["project_id", "time"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_rag_assessments_project_time", table_name="rag_assessments")
    op.drop_table("rag_assessments")
