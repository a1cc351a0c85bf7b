"""Limiting a query to the sites a viewer sees: the one condition every scoped query uses."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def site_filter(column: sa.ColumnElement[Any], sites: frozenset[str] | None) -> sa.ColumnElement[bool]:
    """A WHERE clause limiting `column` to `sites` (true when None: every site)."""
    if sites is None:
        return sa.true()
    return column.in_(sorted(sites))
