"""Sign-in lockout: each person's failed sign-ins in a row and until when the account is
locked.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('user_account') as batch:
        batch.add_column(
            sa.Column('failed_sign_ins', sa.Integer(), nullable=False, server_default='0')
        )
        batch.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('user_account') as batch:
        batch.drop_column('locked_until')
        batch.drop_column('failed_sign_ins')
