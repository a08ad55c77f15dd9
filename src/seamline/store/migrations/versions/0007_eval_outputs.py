"""eval outputs

Revision ID: 0007
Revises: 0006

Model and judge answers of eval runs, by project and request hash (``evals.cache``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eval_outputs",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_eval_outputs_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "request_hash", name=op.f("pk_eval_outputs")),
    )


def downgrade() -> None:
    op.drop_table("eval_outputs")
