"""Initial schema: models, versions, datasets, policies, gate decisions and their check runs.

Revision ID: 0001
Revises:
Create Date: 2025-11-28

Constraint names follow the naming convention in governance/store/tables.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("risk_tier", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model"),
        sa.UniqueConstraint("name", name="uq_model_name"),
    )
    op.create_table(
        "dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uri", sa.String(), nullable=False),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("columns", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dataset"),
        sa.UniqueConstraint("sha256", name="uq_dataset_sha256"),
    )
    op.create_table(
        "policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("risk_tier", sa.String(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy"),
        sa.UniqueConstraint("sha256", name="uq_policy_sha256"),
    )
    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("artifact_uri", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_version"),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name="fk_model_version_model_id_model"),
        sa.UniqueConstraint("model_id", "version", name="uq_model_version_model_id_version"),
    )
    op.create_table(
        "gate_decision",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("data_dataset_id", sa.Integer(), nullable=False),
        sa.Column("reference_dataset_id", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gate_decision"),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name="fk_gate_decision_model_version_id_model_version",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policy.id"], name="fk_gate_decision_policy_id_policy"
        ),
        sa.ForeignKeyConstraint(
            ["data_dataset_id"], ["dataset.id"], name="fk_gate_decision_data_dataset_id_dataset"
        ),
        sa.ForeignKeyConstraint(
            ["reference_dataset_id"],
            ["dataset.id"],
            name="fk_gate_decision_reference_dataset_id_dataset",
        ),
    )
    op.create_index("ix_gate_decision_created_at", "gate_decision", ["created_at"])
    op.create_index("ix_gate_decision_model_version_id", "gate_decision", ["model_version_id"])
    op.create_index("ix_gate_decision_policy_id", "gate_decision", ["policy_id"])
    op.create_table(
        "check_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("check_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_check_run"),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["gate_decision.id"], name="fk_check_run_decision_id_gate_decision"
        ),
        sa.UniqueConstraint("decision_id", "check_id", name="uq_check_run_decision_id_check_id"),
    )


def downgrade() -> None:
    op.drop_table("check_run")
    op.drop_table("gate_decision")
    op.drop_table("model_version")
    op.drop_table("policy")
    op.drop_table("dataset")
    op.drop_table("model")
