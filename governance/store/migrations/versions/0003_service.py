"""The service: promotion requests, jobs, signatures, waivers, final decisions, people, tokens, sessions and access rules.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 01:36:43.602107

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_token",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_token_digest")),
    )
    op.create_table(
        "casbin_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ptype", sa.String(length=255), nullable=False),
        sa.Column("v0", sa.String(length=255), nullable=True),
        sa.Column("v1", sa.String(length=255), nullable=True),
        sa.Column("v2", sa.String(length=255), nullable=True),
        sa.Column("v3", sa.String(length=255), nullable=True),
        sa.Column("v4", sa.String(length=255), nullable=True),
        sa.Column("v5", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_casbin_rule")),
    )
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("full_name", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("username", name=op.f("uq_user_account_username")),
    )
    op.create_table(
        "user_session",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("csrf_token", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_user_session")),
    )
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_session_username"), ["username"], unique=False)

    op.create_table(
        "promotion_request",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("submitter", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("decision_id", sa.String(length=36), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["gate_decision.id"],
            name=op.f("fk_promotion_request_decision_id_gate_decision"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name=op.f("fk_promotion_request_model_version_id_model_version"),
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policy.id"], name=op.f("fk_promotion_request_policy_id_policy")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_request")),
    )
    with op.batch_alter_table("promotion_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_promotion_request_model_version_id"), ["model_version_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_promotion_request_state"), ["state"], unique=False)

    op.create_table(
        "final_decision",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["promotion_request.id"],
            name=op.f("fk_final_decision_request_id_promotion_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_final_decision")),
    )
    with op.batch_alter_table("final_decision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_final_decision_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["promotion_request.id"],
            name=op.f("fk_job_request_id_promotion_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("request_id", "kind", name=op.f("uq_job_request_id_kind")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_status"), ["status"], unique=False)

    op.create_table(
        "signature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("full_name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("meaning", sa.String(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("reauthenticated", sa.Boolean(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["promotion_request.id"],
            name=op.f("fk_signature_request_id_promotion_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature")),
    )
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signature_request_id"), ["request_id"], unique=False)

    op.create_table(
        "waiver_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["promotion_request.id"],
            name=op.f("fk_waiver_request_request_id_promotion_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waiver_request")),
    )
    with op.batch_alter_table("waiver_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_waiver_request_request_id"), ["request_id"], unique=False
        )

    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.drop_column("owner")

    with op.batch_alter_table("waiver_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_waiver_request_request_id"))

    op.drop_table("waiver_request")
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signature_request_id"))

    op.drop_table("signature")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_status"))

    op.drop_table("job")
    with op.batch_alter_table("final_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_final_decision_request_id"))

    op.drop_table("final_decision")
    with op.batch_alter_table("promotion_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotion_request_state"))
        batch_op.drop_index(batch_op.f("ix_promotion_request_model_version_id"))

    op.drop_table("promotion_request")
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_session_username"))

    op.drop_table("user_session")
    op.drop_table("user_account")
    op.drop_table("casbin_rule")
    op.drop_table("api_token")
