"""The schema before Alembic (pledgescan <= 0.1: runs, results, locks from ``create_all``).

Creates each table only when absent, so a store written before migrations existed is adopted as is.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scanner.migrations import JSON_TYPE

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "runs" not in tables:
        op.create_table(
            "runs",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("baseline_id", sa.String(64), nullable=False),
            sa.Column("baseline_version", sa.String(32), nullable=False),
            sa.Column("tool_version", sa.String(32), nullable=False),
            sa.Column("inventory_key", sa.String(64), nullable=False),
            sa.Column("targets_total", sa.Integer, nullable=False),
            sa.Column("plan", JSON_TYPE, nullable=False),
            sa.Column("members", JSON_TYPE, nullable=False),
            sa.Column("options", JSON_TYPE, nullable=False),
            sa.Column("stats", JSON_TYPE, nullable=False),
        )
        op.create_index("ix_runs_inventory_key", "runs", ["inventory_key"])
    if "results" not in tables:
        op.create_table(
            "results",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
            sa.Column("target_key", sa.Text, nullable=False),
            sa.Column("member", sa.String(64), nullable=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("target", sa.Text, nullable=False),
            sa.Column("grade", sa.String(4), nullable=False),
            sa.Column("score", sa.Integer, nullable=False),
            sa.Column("decided", sa.Integer, nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("controls", JSON_TYPE, nullable=False),
            sa.Column("result", JSON_TYPE, nullable=False),
            sa.Column("snapshot", JSON_TYPE, nullable=True),
            sa.UniqueConstraint("run_id", "target_key", name="uq_results_run_target"),
        )
        op.create_index("ix_results_run_id", "results", ["run_id"])
        op.create_index("ix_results_member", "results", ["member"])
    if "locks" not in tables:
        op.create_table(
            "locks",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("owner", sa.String(255), nullable=False),
            sa.Column("run_id", sa.Integer, nullable=True),
            sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    for table in ("locks", "results", "runs"):
        op.drop_table(table)
