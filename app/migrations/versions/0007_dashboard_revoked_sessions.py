"""Dashboard sessions ended by logout, until their cookies expire.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Additive only: a replica on the previous code never reads the table (its
logout still only deletes the browser's cookie), and cookies it issued carry
no session id, so the new code asks their browsers to log in again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_revoked_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Expired revocations are deleted by range (``repository.revoke_dashboard_session``).
    op.create_index(
        "ix_dashboard_revoked_sessions_expires_at", "dashboard_revoked_sessions", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index(
        "ix_dashboard_revoked_sessions_expires_at", table_name="dashboard_revoked_sessions"
    )
    op.drop_table("dashboard_revoked_sessions")
