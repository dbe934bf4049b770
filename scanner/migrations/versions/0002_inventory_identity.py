"""History per target identity: runs name their inventory (lock and ``--resume`` scope) and their check
selection (which runs' results are comparable); results are found by target across runs.

Runs written before this revision get ``inventory = "key:" + inventory_key`` (the members file they came
from was not recorded) and the selection their stored options say.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def selection_key(options: dict | None) -> str:
    """The same text ``scanner.history.keys.selection_key`` gives for these stored options."""
    only = sorted((options or {}).get("only") or [])
    skip = sorted((options or {}).get("skip") or [])
    if not (only or skip):
        return ""
    text = f"only:{','.join(only)}|skip:{','.join(skip)}"
    return text if len(text) <= 255 else f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("inventory", sa.String(255), nullable=False, server_default=""))
        batch.add_column(sa.Column("selection", sa.String(255), nullable=False, server_default=""))
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("inventory_key", sa.String),
                    sa.column("options", sa.JSON), sa.column("inventory", sa.String),
                    sa.column("selection", sa.String))
    bind = op.get_bind()
    for row in bind.execute(sa.select(runs.c.id, runs.c.inventory_key, runs.c.options)).all():
        bind.execute(runs.update().where(runs.c.id == row.id).values(
            inventory=f"key:{row.inventory_key}", selection=selection_key(row.options)))
    op.create_index("ix_runs_inventory", "runs", ["inventory"])
    op.create_index("ix_results_target_run", "results", ["target_key", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_results_target_run", "results")
    op.drop_index("ix_runs_inventory", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("selection")
        batch.drop_column("inventory")
