"""The analytics' day parts: one partition of the local day every dashboard, report and member profile uses.

Fixed rather than taken from the rule bundle: a bundle's day parts serve pricing and points, may overlap, skip
hours or change with a new version; a chart needs parts that cover every hour, the same every month."""

from __future__ import annotations

DAY_PARTS: tuple[tuple[str, int, int], ...] = (
    ("morning", 0, 12),
    ("afternoon", 12, 17),
    ("evening", 17, 21),
    ("late", 21, 24),
)
"""(name, first local hour, first hour after): before noon, the afternoon matinees, the evening, late shows."""

DAY_PART_NAMES: tuple[str, ...] = tuple(name for name, _, _ in DAY_PARTS)


def day_part(hour: int) -> str:
    """The day part of a local hour (0-23)."""
    for name, first, after in DAY_PARTS:
        if first <= hour < after:
            return name
    raise ValueError(f"hour {hour} is not 0-23")
