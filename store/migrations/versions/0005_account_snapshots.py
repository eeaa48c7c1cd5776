"""account snapshots: ARR, tier and renewal date from a moment on, so that backtests see them as they were

The account row holds only the latest values. A backtest scores accounts as of a moment in the past, and a CRM that
zeroes ARR or moves the renewal date once an account churns would otherwise tell it the outcome. Each existing
account gets its first snapshot, valid from its last edit in the CRM (else from when it was synced).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 11:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('valid_from', store.models.UtcDateTime(), nullable=False),
    sa.Column('arr', sa.Float(), nullable=True),
    sa.Column('tier', sa.String(length=64), nullable=True),
    sa.Column('renewal_date', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_snapshots_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_snapshots'))
    )
    with op.batch_alter_table('account_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_account_snapshots_account_valid_from', ['account_id', 'valid_from', 'id'],
                              unique=False)
    op.execute(
        "INSERT INTO account_snapshots (account_id, valid_from, arr, tier, renewal_date) "
        "SELECT id, coalesce(source_updated_at, synced_at), arr, tier, renewal_date FROM accounts ORDER BY id"
    )


def downgrade() -> None:
    with op.batch_alter_table('account_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_account_snapshots_account_valid_from')
    op.drop_table('account_snapshots')
