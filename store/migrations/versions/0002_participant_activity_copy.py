"""participants carry a copy of their activity's account, time, type, direction and deleted flag

Scoring's per-contact relationship aggregates read activity_participants alone, in the order of a covering
index, instead of joining every participant to its activity (the join was most of scoring's time at 100k
accounts). Existing rows are filled from their activities.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPIED = ("account_external_id", "occurred_at", "activity_type", "direction", "is_deleted")


def upgrade() -> None:
    with op.batch_alter_table("activity_participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_external_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("occurred_at", store.models.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("activity_type", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("direction", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False))
    match = "a.source = activity_participants.source AND a.external_id = activity_participants.activity_external_id"
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.dialect.dbapi.sqlite_version_info < (3, 33):  # type: ignore[union-attr]
        # No UPDATE ... FROM before SQLite 3.33: one correlated lookup per column (slower, same result).
        assignments = ", ".join(f"{c} = (SELECT a.{c} FROM activities a WHERE {match})" for c in COPIED)
        op.execute(f"UPDATE activity_participants SET {assignments} "
                   f"WHERE EXISTS (SELECT 1 FROM activities a WHERE {match})")
    else:
        assignments = ", ".join(f"{c} = a.{c}" for c in COPIED)
        op.execute(f"UPDATE activity_participants SET {assignments} FROM activities a WHERE {match}")
    with op.batch_alter_table("activity_participants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activity_participants_account",
            ["source", "account_external_id", "contact_external_id", "occurred_at", "activity_type", "direction",
             "is_deleted"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("activity_participants", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_participants_account")
        for column in reversed(COPIED):
            batch_op.drop_column(column)
