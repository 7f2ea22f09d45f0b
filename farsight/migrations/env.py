"""Alembic's entry to the hub migrations, run by :func:`farsight.migrate.upgrade`.

The runner opens the database, takes the migration lock in its own transaction and passes that
connection; the revisions run inside it, so they commit or roll back as one.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the hub's migrations run through `farsight db upgrade` (farsight.migrate.upgrade), "
        "which opens the database and takes the migration lock"
    )
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
