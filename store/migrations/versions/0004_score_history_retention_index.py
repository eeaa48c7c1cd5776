"""score history: an index on as_of, so that retention finds the oldest rows without reading the table

Runs delete stored scores older than ``scoring.history_keep_days`` (each account's latest stays). History grows by
one row per account per run, so finding the old rows must not read all of it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.create_index("ix_score_history_as_of", ["as_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.drop_index("ix_score_history_as_of")
