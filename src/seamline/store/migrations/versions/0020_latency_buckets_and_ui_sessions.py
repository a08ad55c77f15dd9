"""latency buckets in the rollups; dashboard sessions

Revision ID: 0020
Revises: 0019

The hourly rollups gain a latency histogram (the dashboard's percentiles over any range
without reading raw events), refilled from the events already stored; the dashboard's
sign-ins get a table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in the schema when this revision was written: a migration must not change with it.
_BOUNDS = (25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000)
_COLUMNS = [f"latency_le_{bound}" for bound in _BOUNDS] + ["latency_over"]
_DIMENSIONS = (
    "COALESCE(project_id, 0), COALESCE(api_key_id, ''), route, COALESCE(prompt_name, ''), "
    "COALESCE(prompt_version, 0), COALESCE(model_used, ''), COALESCE(use_case, ''), status"
)
_SUMS = (
    "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(latency_ms), "
    "SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END)"
)


def _bucket_sums() -> str:
    """Per bucket, the calls above the bound before it and at most its own."""
    sums, low = [], None
    for bound in (*_BOUNDS, None):
        conditions = ([f"latency_ms > {low}"] if low is not None else []) + (
            [f"latency_ms <= {bound}"] if bound is not None else []
        )
        sums.append(f"SUM(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END)")
        low = bound
    return ", ".join(sums)


def upgrade() -> None:
    with op.batch_alter_table("event_rollups") as table:
        for name in _COLUMNS:
            table.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    hour = (
        "date_trunc('hour', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        if op.get_bind().dialect.name == "postgresql"
        else "strftime('%Y-%m-%d %H:00:00.000000', time)"
    )
    op.execute("DELETE FROM event_rollups")
    op.execute(
        f"INSERT INTO event_rollups SELECT {hour}, {_DIMENSIONS}, {_SUMS}, {_bucket_sums()} "
        f"FROM events GROUP BY {hour}, {_DIMENSIONS}"
    )
    op.create_table(
        "ui_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_ui_sessions")),
    )
    op.create_index("ix_ui_sessions_key_hash", "ui_sessions", ["key_hash"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ui_sessions_key_hash", table_name="ui_sessions")
    op.drop_table("ui_sessions")
    with op.batch_alter_table("event_rollups") as table:
        for name in reversed(_COLUMNS):
            table.drop_column(name)
