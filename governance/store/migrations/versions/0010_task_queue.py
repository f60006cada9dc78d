"""Tasks on procrastinate, and one effect per task.

On PostgreSQL, procrastinate's own schema (its jobs, workers, events and periodic tables
and functions) as procrastinate 3.10.0 ships it, kept beside the migrations so that this
revision means the same schema whatever version is installed later (a later procrastinate
comes with its own SQL migrations, to be applied as revisions of ours); SQLite runs tasks
in the server and needs none of it. And on both: a gate decision may
carry the key of the effect it is (`checks:<request id>`: one verdict per request however
often its job runs), and a request has each final decision (and its signed attestation)
once. A job keeps the process that took it last (host:pid).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

"""

import re
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

SCHEMA = Path(__file__).parent.parent / "procrastinate-3.10.0-schema.sql"

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        schema = SCHEMA.read_text(encoding="utf-8")
        if op.get_context().as_sql:  # `alembic upgrade --sql`: printed for a DBA, as it is
            op.get_context().impl.static_output(schema)
        else:  # through the driver, without parameters: its PL/pgSQL has literal `%`s
            cursor = op.get_bind().connection.cursor()
            try:
                cursor.execute(schema)
            finally:
                cursor.close()
    with op.batch_alter_table('gate_decision') as batch:
        batch.add_column(sa.Column('effect_key', sa.String(length=80), nullable=True))
        batch.create_unique_constraint('uq_gate_decision_effect_key', ['effect_key'])
    with op.batch_alter_table('job') as batch:
        batch.add_column(sa.Column('claimed_by', sa.String(length=120), nullable=True))
    with op.batch_alter_table('final_decision') as batch:
        batch.create_unique_constraint(
            'uq_final_decision_request_decision', ['request_id', 'decision']
        )


def downgrade() -> None:
    with op.batch_alter_table('final_decision') as batch:
        batch.drop_constraint('uq_final_decision_request_decision', type_='unique')
    with op.batch_alter_table('job') as batch:
        batch.drop_column('claimed_by')
    with op.batch_alter_table('gate_decision') as batch:
        batch.drop_constraint('uq_gate_decision_effect_key', type_='unique')
        batch.drop_column('effect_key')
    if op.get_context().dialect.name == "postgresql":
        schema = SCHEMA.read_text(encoding="utf-8")
        for kind in ("TABLE", "FUNCTION", "TYPE"):
            for name in sorted(set(re.findall(rf"CREATE {kind} (\w+)", schema))):
                op.execute(f"DROP {kind} IF EXISTS {name} CASCADE")
