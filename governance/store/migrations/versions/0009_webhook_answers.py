"""Webhook deliveries keep their last attempt's time and duration, and the start of the
receiver's answer apart from the error, so that only admins are shown it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_delivery') as batch:
        batch.add_column(sa.Column('last_answer', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('last_duration_ms', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_delivery') as batch:
        batch.drop_column('last_duration_ms')
        batch.drop_column('last_attempt_at')
        batch.drop_column('last_answer')
