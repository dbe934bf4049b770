"""What was sent to whom and when (``pledgescan notify``): one row per item a message mentioned, so the
next message repeats an item only when its reminder is due (``scanner.notify.sent``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stores that ran `notify` before this revision already have the table (its module created it).
    if "notifications_sent" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "notifications_sent",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("item_key", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
    )
    op.create_index("ix_notifications_sent_member", "notifications_sent", ["member"])


def downgrade() -> None:
    op.drop_index("ix_notifications_sent_member", "notifications_sent")
    op.drop_table("notifications_sent")
