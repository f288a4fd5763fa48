"""human-gated rollouts

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-03 15:36:20.157916

A rollout compares a candidate policy version with its parent in the annotation queue until people's
ratings decide it (app/rollout/). At most one runs: is_running is TRUE only while it does, and unique.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("share", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("max_battles", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "activated",
                "rejected",
                "inconclusive",
                "ended",
                name="rolloutstatus",
                native_enum=False,
                length=16,
            ),  # fmt: skip
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("battles", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("ties", sa.Integer(), nullable=False),
        sa.Column("rating_diff", sa.Double(), nullable=True),
        sa.Column("rating_diff_low", sa.Double(), nullable=True),
        sa.Column("rating_diff_high", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "is_running",
            sa.Boolean(),
            sa.Computed("CASE WHEN status = 'running' THEN TRUE END", persisted=True),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["policy_versions.id"], name=op.f("fk_rollouts_candidate_id_policy_versions")
        ),
        sa.ForeignKeyConstraint(["ended_by_id"], ["users.id"], name=op.f("fk_rollouts_ended_by_id_users")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["policy_versions.id"], name=op.f("fk_rollouts_parent_id_policy_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
        sa.UniqueConstraint("is_running", name=op.f("uq_rollouts_is_running")),
    )
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollouts_candidate_id"), ["candidate_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollouts_candidate_id"))
    op.drop_table("rollouts")
