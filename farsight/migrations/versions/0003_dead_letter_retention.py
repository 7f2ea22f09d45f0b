"""Dead letters keep their payload's original length and hash; an index for retention by age.

Revision ID: 0003
Revises: 0002

``dead_letters`` gains:

- ``size``: the payload's length in bytes as received. A payload longer than
  ``ingest.dead_letters.keep_bytes`` is stored cut to that many bytes, so ``size`` is what tells
  a cut payload (``size > length(payload)``) from a whole one. Rows from before this revision
  are whole: their ``size`` is set to their payload's length.
- ``sha256``: hex SHA-256 of the whole payload as received, so a cut payload can still be matched
  to a copy kept elsewhere (the device's own log) and two letters of one payload recognised.
  Rows from before this revision have none (``NULL``): hashing every stored payload in the
  migration would hold the write lock for as long as the table is large.

``dead_letters_received`` indexes ``received`` for the retention that deletes letters older than
``ingest.dead_letters.max_age_days``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"size": "BIGINT", "sha256": "TEXT"}


def upgrade() -> None:
    bind = op.get_bind()
    have = {c["name"] for c in sa.inspect(bind).get_columns("dead_letters")}
    for name, spec in COLUMNS.items():
        if name not in have:
            bind.exec_driver_sql(f"ALTER TABLE dead_letters ADD COLUMN {name} {spec}")
    # length() of a BLOB (SQLite) and of a bytea (PostgreSQL) both count bytes.
    bind.exec_driver_sql("UPDATE dead_letters SET size = length(payload) WHERE size IS NULL")
    bind.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received)"
    )


def downgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql("DROP INDEX IF EXISTS dead_letters_received")
    # SQLite drops columns since 3.35 (2021); cut payloads stay cut.
    for name in COLUMNS:
        bind.exec_driver_sql(f"ALTER TABLE dead_letters DROP COLUMN {name}")
