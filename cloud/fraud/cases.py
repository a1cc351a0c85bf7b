"""Alert cases at HQ: one per dedupe key, counted as the same alert comes again, moved by people from open to
acknowledged to resolved (and back), every move recorded with who, when and their note.

Raising works in the caller's transaction (ingest's, so the ack promises the case too) and is safe with several
hub processes: insert-or-ignore on the unique key, then an update of the row under its lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import sqlalchemy as sa

from cloud.db.dialect import insert_or_ignore
from cloud.db.fraud_tables import alert_deliveries, alert_history, alerts
from cloud.errors import AlertError
from protocol.fraud import ACTION_RANK

State = Literal["open", "acknowledged", "resolved"]
STATES: Final = ("open", "acknowledged", "resolved")
MOVES: Final[dict[str, tuple[str, ...]]] = {
    "open": ("acknowledged", "resolved"),
    "acknowledged": ("resolved", "open"),
    "resolved": ("open",),
}
"""The states a case may move to from each state."""
SEVERITY_RANK: Final = {"info": 0, "warning": 1, "critical": 2}
MAX_EVENTS = 20
"""Event references kept on a case (the first ones); `count` says how many there were."""
MAX_KEY = 240
EventRef = tuple[str, int]
Merge = Literal["min", "max", "sum", "last"]


@dataclass(frozen=True, slots=True)
class Case:
    """An alert case (its `alerts` row), its deliveries, and (read one at a time) its history."""

    row: Any
    deliveries: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)


def bounded_key(key: str) -> str:
    """The dedupe key as stored: a key longer than the column keeps its start and a digest of the whole."""
    if len(key) <= MAX_KEY:
        return key
    return key[: MAX_KEY - 65] + "#" + hashlib.sha256(key.encode()).hexdigest()


def raise_alert(
    conn: sa.Connection,
    *,
    dedupe_key: str,
    code: str,
    severity: str,
    source: Literal["box", "hub"],
    summary: str,
    first_at: datetime,
    at: datetime,
    last_at: datetime | None = None,
    action: str | None = None,
    site_id: str | None = None,
    device_id: str | None = None,
    till_id: str | None = None,
    cashier_id: str | None = None,
    staff_id: str | None = None,
    member_id: str | None = None,
    card_token: str | None = None,
    sale_id: str | None = None,
    figures: Mapping[str, Any] | None = None,
    event_ref: EventRef | None = None,
    events: Sequence[EventRef] = (),
    count: int = 1,
    merge: Mapping[str, Merge] | None = None,
) -> int:
    """Open a case, or count `count` more on the open or closed case of `dedupe_key`: its times widened, its
    event references appended (the first `MAX_EVENTS` kept), its figures merged (`merge` per figure: min, max,
    sum; else the newest value), severity and action the strongest seen. Events it holds already count nothing
    (a redelivery). Returns the case's id."""
    key = bounded_key(dedupe_key)
    refs = list(dict.fromkeys([*([event_ref] if event_ref is not None else []), *events]))
    last_at = last_at or first_at
    values: dict[str, Any] = {
        "dedupe_key": key, "code": code[:40], "severity": severity, "action": action, "source": source,
        "site_id": site_id, "device_id": device_id, "till_id": till_id, "cashier_id": _cut(cashier_id, 32),
        "staff_id": _cut(staff_id, 32), "member_id": member_id, "card_token": card_token, "sale_id": sale_id,
        "summary": summary[:300], "figures": dict(figures or {}),
        "events": [{"device_id": ref[0], "seq": ref[1]} for ref in refs[:MAX_EVENTS]],
        "first_at": min(first_at, last_at), "last_at": max(first_at, last_at), "raised_at": at, "count": count,
        "state": "open", "state_at": at,
    }
    if insert_or_ignore(conn, alerts, values):
        alert_id = int(conn.execute(sa.select(alerts.c.id).where(alerts.c.dedupe_key == key)).scalar_one())
        conn.execute(alert_history.insert().values(alert_id=alert_id, at=at, username=None, from_state=None,
                                                   to_state="open", note=None))
        return alert_id
    row = conn.execute(sa.select(alerts).where(alerts.c.dedupe_key == key).with_for_update()).one()
    held = [(str(item["device_id"]), int(item["seq"])) for item in row.events or []]
    known = set(held)
    fresh = [ref for ref in refs if ref not in known]
    if refs and not fresh:
        return int(row.id)  # every event named is counted already
    kept = held + fresh[: max(0, MAX_EVENTS - len(held))]
    conn.execute(alerts.update().where(alerts.c.id == row.id).values(
        count=alerts.c.count + (count if not refs else max(1, count - (len(refs) - len(fresh)))),
        first_at=min(row.first_at, values["first_at"]), last_at=max(row.last_at, values["last_at"]),
        events=[{"device_id": ref[0], "seq": ref[1]} for ref in kept],
        figures=merge_figures(row.figures or {}, values["figures"], merge or {}),
        severity=max(row.severity, severity, key=lambda name: SEVERITY_RANK.get(name, 0)),
        action=_stronger(row.action, action)))
    return int(row.id)


def merge_figures(held: Mapping[str, Any], new: Mapping[str, Any], merge: Mapping[str, Merge]) -> dict[str, Any]:
    """The figures of a case after one more alert: each per its `merge` rule, the newest value otherwise."""
    merged = dict(held)
    for name, value in new.items():
        rule, old = merge.get(name, "last"), held.get(name)
        if rule == "last" or not isinstance(old, int) or not isinstance(value, int):
            merged[name] = value
        elif rule == "sum":
            merged[name] = old + value
        else:
            merged[name] = min(old, value) if rule == "min" else max(old, value)
    return merged


def transition(conn: sa.Connection, *, alert_id: int, to_state: str, username: str | None, note: str | None,
               at: datetime) -> Case:
    """Move a case to `to_state` (`MOVES`), recording who, when and their note; AlertError not_found, or
    conflict when the case is in that state already or cannot go there from its state."""
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id).with_for_update()).one_or_none()
    if row is None:
        raise AlertError("not_found", f"no alert case {alert_id}")
    if to_state == row.state:
        raise AlertError("conflict", f"alert case {alert_id} is {row.state} already")
    if to_state not in MOVES.get(row.state, ()):
        raise AlertError("conflict", f"alert case {alert_id} is {row.state}: it can go to "
                                     f"{' or '.join(MOVES.get(row.state, ())) or 'nothing'}, not {to_state}")
    conn.execute(alerts.update().where(alerts.c.id == alert_id).values(
        state=to_state, state_at=at, state_by=username, note=note))
    conn.execute(alert_history.insert().values(alert_id=alert_id, at=at, username=username, from_state=row.state,
                                               to_state=to_state, note=note))
    case = get_alert(conn, alert_id=alert_id)
    assert case is not None
    return case


def list_alerts(
    conn: sa.Connection,
    *,
    state: str | None = None,
    site_id: str | None = None,
    code: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
    sites: frozenset[str] | None = None,
) -> list[Case]:
    """Cases raised in [since, until), newest first, `limit` at most, before case `before_id`; with deliveries.
    `sites` (a site manager's) keeps the cases of those sites only."""
    col = alerts.c
    query = sa.select(alerts)
    for column, wanted in ((col.state, state), (col.site_id, site_id), (col.code, code), (col.severity, severity)):
        if wanted is not None:
            query = query.where(column == wanted)
    if sites is not None:
        query = query.where(col.site_id.in_(sorted(sites)))
    if since is not None:
        query = query.where(col.raised_at >= since)
    if until is not None:
        query = query.where(col.raised_at < until)
    if before_id is not None:
        query = query.where(col.id < before_id)
    rows = conn.execute(query.order_by(col.id.desc()).limit(limit)).all()
    deliveries = _deliveries(conn, [int(row.id) for row in rows])
    return [Case(row, deliveries.get(int(row.id), [])) for row in rows]


def get_alert(conn: sa.Connection, *, alert_id: int) -> Case | None:
    """One case with its deliveries and its history (oldest first); None when there is no such case."""
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one_or_none()
    if row is None:
        return None
    history = conn.execute(sa.select(alert_history).where(alert_history.c.alert_id == alert_id)
                           .order_by(alert_history.c.id)).all()
    return Case(row, _deliveries(conn, [alert_id]).get(alert_id, []), list(history))


def _deliveries(conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[Any]]:
    if not ids:
        return {}
    found: dict[int, list[Any]] = {}
    rows = conn.execute(sa.select(alert_deliveries).where(alert_deliveries.c.alert_id.in_(list(ids)))
                        .order_by(alert_deliveries.c.alert_id, alert_deliveries.c.channel))
    for row in rows:
        found.setdefault(int(row.alert_id), []).append(row)
    return found


def _stronger(held: str | None, new: str | None) -> str | None:
    if held is None or new is None:
        return held or new
    return held if ACTION_RANK.get(held, 0) >= ACTION_RANK.get(new, 0) else new


def _cut(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None
