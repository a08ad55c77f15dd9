"""call scores

Revision ID: 0017
Revises: 0016

Live calls scored off the request path by the eval harness's scorers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_scores",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prompt_name", sa.String(length=200), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("arm", sa.String(length=16), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_call_scores_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("request_id", "metric", "source", name=op.f("pk_call_scores")),
    )
    op.create_index(
        "ix_call_scores_project_time", "call_scores", ["project_id", "time"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_call_scores_project_time", table_name="call_scores")
    op.drop_table("call_scores")
