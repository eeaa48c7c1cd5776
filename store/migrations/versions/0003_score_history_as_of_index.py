"""score history: an index to find each account's latest score at or before a moment

Every run reads, per account, its latest stored score at or before as_of (the previous band, for hysteresis) and
at or before as_of - trend_days (the trend). Without an index on (account_id, as_of) that read ranked the whole
history table, which grows by one row per account per run: at 100k accounts, two runs' history took 17 s to
read, and a year of daily runs would take hours. With it, each account is one index seek.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.create_index("ix_score_history_account_as_of", ["account_id", "as_of", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.drop_index("ix_score_history_account_as_of")
