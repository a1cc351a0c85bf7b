"""The sponsors' bill of recorded sales: the campaign points each sponsor owes for, per campaign and site, and
their money at the redemption rate of the bundle that decided each sale (points / points_per_unit minor
units, rounded down per campaign, site and bundle version)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.backtest import store
from cloud.db.schema import rule_bundles

Key = tuple[str, str, str, int | None]
"""(sponsor, campaign, site, rules version)"""


def sponsors_bill(engine: sa.Engine, start: datetime, end: datetime) -> dict[str, Any]:
    """Rows per sponsor, campaign and site, and totals per sponsor, of the sales in [start, end)."""
    points: dict[Key, int] = {}
    for page in store.pages(engine, start, end, None):
        for event in page:
            if event.type == store.SALE:
                _add(points, event.site_id, event.body)
    rates = _rates(engine, {key[3] for key in points})
    rows: dict[tuple[str, str, str], dict[str, int]] = {}
    for (sponsor, campaign, site, version), total in points.items():
        row = rows.setdefault((sponsor, campaign, site), {"points": 0, "money": 0})
        row["points"] += total
        row["money"] += total // rates[version]
    sponsors: dict[str, dict[str, int]] = {}
    for (sponsor, _, _), row in rows.items():
        owed = sponsors.setdefault(sponsor, {"points": 0, "money": 0})
        owed["points"] += row["points"]
        owed["money"] += row["money"]
    return {
        "from": start.isoformat().replace("+00:00", "Z"), "to": end.isoformat().replace("+00:00", "Z"),
        "sponsors": [{"sponsor": sponsor, **owed} for sponsor, owed in sorted(sponsors.items())],
        "rows": [{"sponsor": sponsor, "campaign": campaign, "site_id": site, **row}
                 for (sponsor, campaign, site), row in sorted(rows.items())],
    }


def _add(points: dict[Key, int], site_id: str, body: Any) -> None:
    # Read as stored, without validating the whole sale: only the parts a sponsor pays for count.
    payload = body.get("payload") if isinstance(body, dict) else None
    loyalty = payload.get("loyalty") if isinstance(payload, dict) else None
    if not isinstance(loyalty, dict) or loyalty.get("status") != "earned":
        return
    version = loyalty.get("rules_version")
    version = version if isinstance(version, int) else None
    for part in loyalty.get("earned_by") or ():
        if not isinstance(part, dict):
            continue
        rule, sponsor, earned = part.get("rule"), part.get("sponsor"), part.get("points")
        if (isinstance(rule, str) and rule.startswith("campaign:") and isinstance(sponsor, str)
                and isinstance(earned, int) and earned > 0):
            key = (sponsor, rule.removeprefix("campaign:"), site_id, version)
            points[key] = points.get(key, 0) + earned


def _rates(engine: sa.Engine, versions: set[int | None]) -> dict[int | None, int]:
    """Points per minor unit by bundle version; the newest bundle's for a version the hub does not hold (1
    with none: the built-in default's)."""
    with engine.connect() as conn:
        bodies = dict(conn.execute(sa.select(rule_bundles.c.version, rule_bundles.c.body).where(
            rule_bundles.c.version.in_([version for version in versions if version is not None]))).all())
        newest = conn.execute(sa.select(rule_bundles.c.body).order_by(rule_bundles.c.version.desc()).limit(1)).scalar()
    fallback = _rate(newest)
    return {version: _rate(bodies[version]) if version in bodies else fallback for version in versions}


def _rate(body: Any) -> int:
    redemption = body.get("redemption") if isinstance(body, dict) else None
    rate = redemption.get("points_per_unit") if isinstance(redemption, dict) else None
    return rate if isinstance(rate, int) and rate >= 1 else 1
