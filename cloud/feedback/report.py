"""Complaint handling times per category, for the periodic reports."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cloud.db.feedback_tables import complaints


@dataclass(frozen=True, slots=True)
class CategoryTimes:
    """How a category's complaints opened in a period were handled."""

    category: str
    opened: int
    """Complaints opened in the period."""
    resolved: int
    """Of those, how many are resolved (or closed) by now."""
    overdue: int
    """Of those, how many missed their response deadline (answered late, or still unanswered past it)."""
    median_response_hours: float | None
    """Median time from opening to the first response (None when none was answered)."""
    median_resolution_hours: float | None
    """Median time from opening to resolution (None when none was resolved)."""


def complaint_times(conn: sa.Connection, *, sites: frozenset[str] | None, start: datetime,
                    end: datetime, now: datetime | None = None) -> list[CategoryTimes]:
    """Per category, the complaints opened in [start, end) at `sites` (None: every site), sorted by category.

    "Now" (what an unanswered complaint is late against) is `now`, the current time by default."""
    now = now or datetime.now(UTC)
    c = complaints.c
    query = sa.select(c.category, c.opened_at, c.due_at, c.responded_at, c.resolved_at).where(
        c.opened_at >= start, c.opened_at < end)
    if sites is not None:
        query = query.where(c.site_id.in_(sorted(sites)))
    by_category: dict[str, list[Any]] = {}
    for row in conn.execute(query):  # a period's complaints: hundreds, not millions
        by_category.setdefault(row.category, []).append(row)
    result = []
    for category in sorted(by_category):
        rows = by_category[category]
        response = [_hours(row.opened_at, row.responded_at) for row in rows if row.responded_at is not None]
        resolution = [_hours(row.opened_at, row.resolved_at) for row in rows if row.resolved_at is not None]
        late = sum(1 for row in rows if (row.responded_at or now) > row.due_at)
        result.append(CategoryTimes(
            category=category, opened=len(rows), resolved=len(resolution), overdue=late,
            median_response_hours=round(statistics.median(response), 2) if response else None,
            median_resolution_hours=round(statistics.median(resolution), 2) if resolution else None))
    return result


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600
