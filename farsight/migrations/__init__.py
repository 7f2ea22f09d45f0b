"""The hub database's migration scripts (Alembic), run by :mod:`farsight.migrate`.

``versions/NNNN_what.py`` is one revision each, revision id ``NNNN``, in one line of history.
To add one: copy the newest, give it the next number as ``revision`` and the newest's as
``down_revision``, write ``upgrade()`` (raw SQL through ``op.get_bind().exec_driver_sql``, for
both dialects), and set :data:`farsight.migrate.HEAD` to the new number.
"""
