"""alerts, and what the upstream said answered

Revision ID: 0015
Revises: 0014

Alerts with their evidence and delivery; each event's upstream model and system
fingerprint (a silent model update shows as a change in these).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_model", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("system_fingerprint", sa.String(length=100), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("request_ids", sa.JSON(), nullable=False),
        sa.Column("delivery", sa.JSON(), nullable=False),
        sa.Column("claim", sa.String(length=700), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_alerts_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("claim", name=op.f("uq_alerts_claim")),
    )
    op.create_index("ix_alerts_rule_time", "alerts", ["rule", "subject", "fired_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alerts_rule_time", table_name="alerts")
    op.drop_table("alerts")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("system_fingerprint")
        batch_op.drop_column("upstream_model")
