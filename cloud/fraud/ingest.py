"""What ingest does with fraud and staff events, in the batch's own transaction (the ack promises all of it): a
box's alert becomes a case, every staff action a row of the audit trail, sales, refunds and overrides add up in
the daily staff activity, cards' sightings feed impossible travel, and lost events open integrity cases.

It runs on the payloads `cloud.ingest.store.check_payload` validated, for the events newly stored only (a
redelivered batch never reaches it), so nothing here counts twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from cloud.db.dialect import upsert_add
from cloud.db.fraud_tables import staff_activity, staff_audit
from cloud.fraud.cases import raise_alert
from cloud.fraud.integrity import lost_event_cases
from cloud.fraud.travel import check_travel
from cloud.members.accounts import running_bundle
from cloud.members.ledger import trusted_time
from protocol.alerts import AlertRaised
from protocol.calendar import local_day
from protocol.events import Event, SaleRecorded
from protocol.messages import LostEvent
from protocol.staff import (
    DrawerOpened,
    HoldDecided,
    PriceOverride,
    SaleRefunded,
    StaffSignedIn,
    StaffSignedOut,
)

StaffAction = StaffSignedIn | StaffSignedOut | SaleRefunded | PriceOverride | DrawerOpened | HoldDecided
STAFF_ACTIONS = (StaffSignedIn, StaffSignedOut, SaleRefunded, PriceOverride, DrawerOpened, HoldDecided)
ACTIVITY_KEY = ("day", "site_id", "till_id", "cashier_id", "card_token")
ACTIVITY_COUNTS = ("sales", "points_earned", "points_held", "points_redeemed", "refunds", "refunded", "overrides",
                   "flagged")
STAFF_ID_LENGTH = 32


def on_stored(
    conn: sa.Connection,
    *,
    stored: Sequence[tuple[Event, object]],
    lost: Sequence[LostEvent],
    device_id: str,
    site_id: str,
    received_at: datetime,
) -> None:
    """Take up the events just stored (each with its checked payload: a model, a refusal, or None for a type
    this hub does not know) and the lost events just recorded."""
    if not stored and not lost:
        return
    bundle = running_bundle(conn)
    tz = bundle.timezone
    audit: list[dict[str, Any]] = []
    activity: dict[tuple[Any, ...], dict[str, int]] = {}
    sightings: list[tuple[Event, SaleRecorded]] = []
    for event, payload in stored:
        if isinstance(payload, AlertRaised):
            box_alert(conn, event=event, alert=payload, received_at=received_at)
        elif isinstance(payload, STAFF_ACTIONS):
            audit.append(audit_row(event, payload, site_id))
        if isinstance(payload, SaleRecorded | SaleRefunded | PriceOverride):
            add_activity(activity, local_day(event.occurred_at, tz), site_id, payload)
        if isinstance(payload, SaleRecorded) and payload.card_token is not None and trusted_time(event, received_at):
            sightings.append((event, payload))  # a box whose clock is not believed cannot say where a card was when
    if audit:
        conn.execute(staff_audit.insert(), audit)
    # Sorted keys: concurrent writers take the rollup's row locks in one order.
    upsert_add(conn, staff_activity, [dict(zip(ACTIVITY_KEY, key, strict=True)) | activity[key]
                                      for key in sorted(activity)], key=ACTIVITY_KEY, add=ACTIVITY_COUNTS)
    if sightings:
        check_travel(conn, sales=sightings, site_id=site_id, bundle=bundle, at=received_at)
    if lost:
        lost_event_cases(conn, lost=lost, device_id=device_id, site_id=site_id, at=received_at, tz=tz)


def forget_events(conn: sa.Connection, *, stored: Sequence[tuple[Event, object]], device_id: str, start: int,
                  site_id: str) -> None:
    """Take a device's events from `start` on (`stored`: those with their checked payloads) out of the staff
    audit and activity: they left its chain (a conflict resolved for the box), whose events will take their
    seqs. Cases raised stay, as what happened at the time."""
    conn.execute(staff_audit.delete().where(staff_audit.c.device_id == device_id, staff_audit.c.seq >= start))
    tz = running_bundle(conn).timezone
    activity: dict[tuple[Any, ...], dict[str, int]] = {}
    for event, payload in stored:
        if isinstance(payload, SaleRecorded | SaleRefunded | PriceOverride):
            add_activity(activity, local_day(event.occurred_at, tz), site_id, payload)
    upsert_add(conn, staff_activity, [dict(zip(ACTIVITY_KEY, key, strict=True))
                                      | {name: -value for name, value in activity[key].items()}
                                      for key in sorted(activity)], key=ACTIVITY_KEY, add=ACTIVITY_COUNTS)


def box_alert(conn: sa.Connection, *, event: Event, alert: AlertRaised, received_at: datetime) -> int:
    """The case of an alert a box raised: one per site and alert key, counted per event."""
    return raise_alert(
        conn, dedupe_key=f"{alert.site_id}:{alert.key}", code=alert.code, severity=alert.severity,
        action=alert.action, source="box", site_id=alert.site_id, device_id=event.device_id, till_id=alert.till_id,
        cashier_id=alert.cashier_id, staff_id=alert.staff_id, member_id=alert.member_id,
        card_token=alert.card_token, sale_id=alert.sale_id, summary=alert.summary, figures=dict(alert.figures),
        event_ref=(event.device_id, event.seq), first_at=alert.first_at, last_at=event.occurred_at,
        at=received_at,
    )


def audit_row(event: Event, action: StaffAction, site_id: str) -> dict[str, Any]:
    """The staff audit row of one staff event: who, where, what, and the rest of what it says (declared fields
    only: what a box adds beyond the contract is not kept here)."""
    taken = {"site_id", "till_id", "sale_id"}
    amount: int | None = None
    points: int | None = None
    if isinstance(action, StaffSignedIn | StaffSignedOut):
        staff_id = action.staff_id
        taken.add("staff_id")
    elif isinstance(action, HoldDecided):
        staff_id, points = action.supervisor_id, action.points
        taken |= {"supervisor_id", "points"}
    else:
        staff_id = action.cashier_id
        taken.add("cashier_id")
        if isinstance(action, SaleRefunded | PriceOverride):
            amount = action.amount
            taken.add("amount")
        if isinstance(action, SaleRefunded):
            points = action.points_reversed
            taken.add("points_reversed")
    detail = action.model_dump(mode="json", include=set(type(action).model_fields) - taken, exclude_none=True)
    return {
        "device_id": event.device_id, "seq": event.seq, "site_id": site_id, "till_id": action.till_id,
        "staff_id": staff_id, "action": event.type, "occurred_at": event.occurred_at,
        "sale_id": getattr(action, "sale_id", None), "amount": amount, "points": points, "detail": detail or None,
    }


def add_activity(activity: dict[tuple[Any, ...], dict[str, int]], day: date, site_id: str,
                 payload: SaleRecorded | SaleRefunded | PriceOverride) -> None:
    """Add one sale, refund or override to the day's row of its site, till, cashier and card."""
    card = payload.card_token if isinstance(payload, SaleRecorded | SaleRefunded) else None
    key = (day, site_id, payload.till_id, payload.cashier_id[:STAFF_ID_LENGTH], card or "")
    row = activity.setdefault(key, dict.fromkeys(ACTIVITY_COUNTS, 0))
    if isinstance(payload, SaleRecorded):
        loyalty = payload.loyalty
        row["sales"] += 1
        row["points_earned"] += loyalty.points_earned if loyalty.status == "earned" else 0
        row["points_held"] += loyalty.points_held
        row["points_redeemed"] += loyalty.points_redeemed
        row["flagged"] += 1 if payload.fraud is not None else 0
    elif isinstance(payload, SaleRefunded):
        row["refunds"] += 1
        row["refunded"] += payload.amount
    else:
        row["overrides"] += 1

