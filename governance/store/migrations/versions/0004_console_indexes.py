"""Indexes for the console's list pages (bench/console.py): requests newest first and by
state, the queue by state and waiting time (with the columns it filters on), my signatures
and my models, models by tier, audit events by action and by actor. The single-column
indexes on promotion_request.state and audit_event.action give way to the composites that
lead with the same column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Columns = list[str | sa.TextClause]
NEWEST = sa.text("created_at DESC")
# (index, table, columns)
ADDED: list[tuple[str, str, Columns]] = [
    ("ix_promotion_request_created_at", "promotion_request", [NEWEST, "id", "model_version_id"]),
    ("ix_promotion_request_state_created_at", "promotion_request", ["state", NEWEST, "id"]),
    (
        "ix_promotion_request_state_updated_at",
        "promotion_request",
        ["state", "updated_at", "id", "policy_id", "submitter", "model_version_id"],
    ),
    ("ix_signature_username_request_id", "signature", ["username", "request_id"]),
    ("ix_model_risk_tier_name", "model", ["risk_tier", "name"]),
    ("ix_model_owner", "model", ["owner"]),
    ("ix_audit_event_action_seq", "audit_event", ["action", "seq"]),
    ("ix_audit_event_actor_seq", "audit_event", ["actor", "seq"]),
]
REPLACED: list[tuple[str, str, Columns]] = [
    ("ix_promotion_request_state", "promotion_request", ["state"]),
    ("ix_audit_event_action", "audit_event", ["action"]),
]


def upgrade() -> None:
    for name, table, columns in ADDED:
        op.create_index(name, table, columns, unique=False)
    for name, table, _ in REPLACED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in REPLACED:
        op.create_index(name, table, columns, unique=False)
    for name, table, _ in reversed(ADDED):
        op.drop_index(name, table_name=table)
