"""token scopes and expiry

Revision ID: 0003
Revises: 0005
Create Date: 2026-12-03 10:00:00.000000

Existing tokens keep working: each gets the scopes its owner's role implies (admin: annotate, export
and admin; annotator: annotate) and no expiry.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The role -> scopes mapping as of this revision (app.auth.models.ROLE_SCOPES may change later; a
# migration must keep meaning what it meant when it was written).
ROLE_SCOPES = {"admin": ["admin", "annotate", "export"], "annotator": ["annotate"]}


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))

    tokens = sa.table("api_tokens", sa.column("user_id", sa.Integer()), sa.column("scopes", sa.JSON()))
    users = sa.table("users", sa.column("id", sa.Integer()), sa.column("role", sa.String()))
    for role, scopes in ROLE_SCOPES.items():
        owners = sa.select(users.c.id).where(users.c.role == role)
        op.execute(tokens.update().where(tokens.c.user_id.in_(owners)).values(scopes=scopes))

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("scopes", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scopes")
