"""Alembic environment: always run programmatically by `cloud.db.engine.migrate` on a given connection."""

from __future__ import annotations

from alembic import context

import cloud.db.schema  # noqa: F401  (defines every table on `metadata`)
from cloud.db.metadata import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through cloud.db.engine.migrate(engine), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode lets later migrations rebuild tables there.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
