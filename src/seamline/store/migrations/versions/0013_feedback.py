"""feedback

Revision ID: 0013
Revises: 0012

What users said of calls and sessions: thumbs, ratings and named metrics, with comments.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=220), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("user_key", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_feedback_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("project_id", "target", "user_key", "metric", name="uq_feedback_key"),
    )
    op.create_index(
        "ix_feedback_project_request", "feedback", ["project_id", "request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_project_request", table_name="feedback")
    op.drop_table("feedback")
