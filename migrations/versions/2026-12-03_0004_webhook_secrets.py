"""webhook secrets encrypted at rest

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-03 10:00:00.000000

The plaintext `secret` column becomes `encrypted_secret` (Fernet under a key derived from the app's
SECRET_KEY, see app/webhooks/crypto.py) plus `secret_prefix` (the first characters, for listings).
Existing rows are encrypted here with the key the app itself reads (Settings.secret_key: the
PREFLOOP_SECRET_KEY setting, or the key file in the data directory), so run this migration with the
same settings as the app; downgrading decrypts them again with that key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.config import get_settings
from app.webhooks import crypto

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

endpoints = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.Integer()),
    sa.column("secret", sa.String()),
    sa.column("encrypted_secret", sa.String()),
    sa.column("secret_prefix", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("encrypted_secret", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("secret_prefix", sa.String(length=16), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(sa.select(endpoints.c.id, endpoints.c.secret)).all()
    if rows:  # the key is read (and, on a fresh data directory, generated) only when there is work
        secret_key = get_settings().secret_key
        for endpoint_id, secret in rows:
            connection.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(encrypted_secret=crypto.encrypt(secret_key, secret), secret_prefix=secret[:10])
            )

    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("encrypted_secret", existing_type=sa.String(length=255), nullable=False)
        batch_op.alter_column("secret_prefix", existing_type=sa.String(length=16), nullable=False)
        batch_op.drop_column("secret")


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=100), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(sa.select(endpoints.c.id, endpoints.c.encrypted_secret)).all()
    if rows:
        secret_key = get_settings().secret_key
        for endpoint_id, token in rows:
            connection.execute(
                endpoints.update().where(endpoints.c.id == endpoint_id).values(secret=crypto.decrypt(secret_key, token))
            )

    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=100), nullable=False)
        batch_op.drop_column("secret_prefix")
        batch_op.drop_column("encrypted_secret")
