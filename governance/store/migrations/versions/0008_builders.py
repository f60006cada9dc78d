"""CI builders: the Ed25519 keys whose signed provenance a policy may accept in place of
the service re-computing the checks (issue 13, item 3).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('builder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_builder')),
    sa.UniqueConstraint('name', name=op.f('uq_builder_name'))
    )


def downgrade() -> None:
    op.drop_table('builder')
