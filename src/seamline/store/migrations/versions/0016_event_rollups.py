"""event rollups

Revision ID: 0016
Revises: 0015

Hourly sums of the events, filled from the events already stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIMENSIONS = (
    "COALESCE(project_id, 0), COALESCE(api_key_id, ''), route, COALESCE(prompt_name, ''), "
    "COALESCE(prompt_version, 0), COALESCE(model_used, ''), COALESCE(use_case, ''), status"
)
_SUMS = (
    "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(latency_ms), "
    "SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END)"
)


def upgrade() -> None:
    op.create_table(
        "event_rollups",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("prompt_name", sa.String(length=200), nullable=False),
        sa.Column("prompt_version", sa.Integer(), nullable=False),
        sa.Column("model_used", sa.String(length=200), nullable=False),
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour",
            "project_id",
            "api_key_id",
            "route",
            "prompt_name",
            "prompt_version",
            "model_used",
            "use_case",
            "status",
            name=op.f("pk_event_rollups"),
        ),
    )
    op.create_index(
        "ix_event_rollups_project_hour", "event_rollups", ["project_id", "hour"], unique=False
    )
    hour = (
        "date_trunc('hour', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        if op.get_bind().dialect.name == "postgresql"
        else "strftime('%Y-%m-%d %H:00:00.000000', time)"
    )
    op.execute(
        f"INSERT INTO event_rollups SELECT {hour}, {_DIMENSIONS}, {_SUMS} FROM events "
        f"GROUP BY {hour}, {_DIMENSIONS}"
    )


def downgrade() -> None:
    op.drop_index("ix_event_rollups_project_hour", table_name="event_rollups")
    op.drop_table("event_rollups")
