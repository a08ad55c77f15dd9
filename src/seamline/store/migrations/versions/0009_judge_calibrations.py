"""judge calibrations

Revision ID: 0009
Revises: 0008

A judge prompt version and model measured against labelled items (``evals.calibration``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "judge_calibrations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("judge_prompt", sa.String(length=200), nullable=False),
        sa.Column("judge_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("labels", sa.String(length=300), nullable=False),
        sa.Column("labels_hash", sa.String(length=64), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("errored", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_judge_calibrations_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_calibrations")),
    )
    op.create_index(
        "ix_judge_calibrations_judge",
        "judge_calibrations",
        ["project_id", "judge_hash"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_judge_calibrations_judge", table_name="judge_calibrations")
    op.drop_table("judge_calibrations")
