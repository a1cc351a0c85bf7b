"""INSERT ... ON CONFLICT for SQLite and PostgreSQL: the two backends share the syntax, not the class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the hub supports SQLite and PostgreSQL, not {name}")


def insert_or_ignore(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert one row unless its primary key (or a unique column) exists already (safe against a concurrent
    insert); True when this call inserted it."""
    # RETURNING, not rowcount: PostgreSQL's implicit RETURNING of the key leaves rowcount at -1.
    stmt = _insert(conn, table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return conn.execute(stmt).first() is not None


def upsert_add(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    add: Sequence[str],
) -> None:
    """Insert rows, or add their `add` columns onto the existing row with the same `key`."""
    if not rows:
        return
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={column: table.c[column] + stmt.excluded[column] for column in add},
    )
    conn.execute(stmt, list(rows))
