"""Distributed work (``pledgescan worker``, ``scan --broker``): one row per (run, target, evidence family)
holding the recorded evidence and the attempts, and the store's identity (its broker namespace).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scanner.migrations import JSON_TYPE

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stores that ran workers before this revision already have the tables (their module created them).
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if {"work_items", "work_meta"} <= existing:
        return
    op.create_table(
        "work_items",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("target_key", sa.Text, primary_key=True),
        sa.Column("family", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("evidence", JSON_TYPE, nullable=True),
        sa.Column("addresses", JSON_TYPE, nullable=True),
        sa.Column("resolution_error", sa.Text, nullable=True),
        sa.Column("stats", JSON_TYPE, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "work_meta",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("work_meta")
    op.drop_table("work_items")
