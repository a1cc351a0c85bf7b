"""The hub's own cases about boxes and members it can see across sites: a box's journal altered, damaged or with
an event missing, a box's hash chain broken by two signed events under one number, and a member's points spent
twice by boxes that could not see each other (an overdraft).

One case per device (member), code and local day: a flood of lost events is one case with a count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import sqlalchemy as sa

from cloud.fraud.cases import Merge, raise_alert
from cloud.members.accounts import running_bundle
from protocol.calendar import local_day
from protocol.messages import LostEvent

LOST_CODES: Final[dict[str, tuple[str, str, str]]] = {
    "unreadable": ("journal_altered", "critical", "a journal row was altered on the box's disk"),
    "missing": ("chain_gap", "critical", "an event is missing from the box's journal"),
    "unreadable_page": ("storage_damaged", "warning", "the box's journal file is damaged"),
}
"""A lost event's reason: the case's code, severity and what the summary says happened."""
SEQ_MERGE: Final[dict[str, Merge]] = {"first_seq": "min", "last_seq": "max", "events": "sum"}


def lost_event_cases(conn: sa.Connection, *, lost: Sequence[LostEvent], device_id: str, site_id: str,
                     at: datetime, tz: str) -> list[int]:
    """One case per reason among the lost events just recorded (a reason this hub does not know raises none);
    the ids of the cases raised or counted on."""
    by_code: dict[str, list[LostEvent]] = {}
    for item in lost:
        if item.reason in LOST_CODES:
            by_code.setdefault(item.reason, []).append(item)
    return [_device_case(conn, reason=reason, seqs=[item.seq for item in items], device_id=device_id,
                         site_id=site_id, at=at, tz=tz) for reason, items in sorted(by_code.items())]


def conflict_case(conn: sa.Connection, *, seq: int, device_id: str, site_id: str, at: datetime) -> int:
    """The case of a chain conflict the hub just put on record (once per clashing event)."""
    return _device_case(conn, reason=None, seqs=[seq], device_id=device_id, site_id=site_id, at=at,
                        tz=running_bundle(conn).timezone)


def _device_case(conn: sa.Connection, *, reason: str | None, seqs: Sequence[int], device_id: str, site_id: str,
                 at: datetime, tz: str) -> int:
    if reason is None:
        code, severity, what = "chain_conflict", "critical", "two signed events under one number in the box's chain"
    else:
        code, severity, what = LOST_CODES[reason]
    day = local_day(at, tz).isoformat()
    return raise_alert(
        conn, dedupe_key=f"hub:{code}:{device_id}:{day}", code=code, severity=severity, source="hub",
        site_id=site_id, device_id=device_id, summary=f"box {device_id} at site {site_id}: {what}",
        figures={"first_seq": min(seqs), "last_seq": max(seqs), "events": len(seqs)}, merge=SEQ_MERGE,
        events=[(device_id, seq) for seq in sorted(seqs)], count=len(seqs), first_at=at, at=at,
    )


def overdraft_case(conn: sa.Connection, *, member_id: str, points: int, sites: Sequence[str],
                   at: datetime) -> int:
    """The case of an overdraft just opened: the member `points` below zero after redemptions at `sites`."""
    day = local_day(at, running_bundle(conn).timezone).isoformat()
    named = ", ".join(sites[:5]) + (f" and {len(sites) - 5} more" if len(sites) > 5 else "")
    return raise_alert(
        conn, dedupe_key=f"hub:overdraft:{member_id}:{day}", code="overdraft", severity="warning", source="hub",
        member_id=member_id, site_id=sites[0] if len(sites) == 1 else None,
        summary=f"member {member_id} went {points} points below zero after redeeming at {named or 'unknown sites'}",
        figures={"points": points, "sites": len(sites)}, merge={"points": "max", "sites": "max"},
        first_at=at, at=at,
    )
