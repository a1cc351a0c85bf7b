"""The courier: a thread of the hub that delivers alert cases to the configured channels (e-mail, webhooks,
chat tools, through apprise), and mails the daily fraud report each morning (`cloud.fraud.morning`).

Every `alert_poll_s` (or at once when `notify()` is called) it gives each open case at or above
`alert_min_severity`, raised within `alert_backlog_hours`, one `alert_deliveries` row per channel (pending),
then sends the deliveries due. A channel that `site_alert_channels` gives to sites (a site manager's) gets the
cases of those sites only; the other channels get every case. A failure is retried with exponential backoff
and jitter (`alert_retry_base_s` doubling to `alert_retry_max_s`), its reason kept in `last_error`; after
`alert_failing_after` attempts the delivery shows `failing` on its case and is still retried at the longest
interval until it is `sent`: a case is never dropped silently.

Several hub processes may run couriers over one database: a delivery is claimed in a short transaction
(PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: BEGIN IMMEDIATE) that moves its `next_at` ahead (a lease), and
that lease is checked and renewed just before its send, so no two couriers send one delivery. A courier that
dies mid-send leaves the lease to run out; the delivery is then sent again (at least once, never dropped).

It uses its own small engine; an idle courier only reads. A database outage pauses it, logged once; a
channel that starts failing is logged once and once when it delivers again, never one line per attempt.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from cloud.db.dialect import insert_or_ignore
from cloud.db.fraud_tables import alert_deliveries, alerts
from cloud.db.schema import sites
from cloud.feedback.alerts import HUB_REASONS
from cloud.fraud.channels import SEND_TIMEOUT_S, Channel
from cloud.fraud.morning import MorningMail
from cloud.fraud.report import masked_card
from cloud.settings import HubSettings
from protocol.fraud import REASONS

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")
BATCH = 20
LEASE = timedelta(seconds=SEND_TIMEOUT_S + 60)
"""How long a claimed delivery is another courier's to leave alone: longer than one send may take."""
API_CASE_PATH = "/api/v1/alerts/{id}"


@dataclass(frozen=True)
class Backoff:
    """When a delivery that failed `attempts` times is tried again: `base` doubling up to `longest` (with
    jitter, so channels coming back are not hit all at once); at `longest` once it is `failing`."""

    base: float
    longest: float
    failing_after: int

    def delay(self, attempts: int, rng: random.Random) -> float:
        if attempts >= self.failing_after:
            seconds = self.longest
        else:
            seconds = min(self.longest, self.base * 2 ** max(0, attempts - 1))
        return seconds * rng.uniform(0.8, 1.0)

    def state(self, attempts: int) -> Literal["pending", "failing"]:
        return "failing" if attempts >= self.failing_after else "pending"


class Courier:
    """`start()`, `stop()`, `notify()` (a case was raised: look now); `tick()` is one pass, never raising."""

    def __init__(self, engine: sa.Engine, settings: HubSettings, *, now: Callable[[], datetime] | None = None,
                 rng: random.Random | None = None) -> None:
        self._engine = engine
        self._now = now or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._poll = settings.alert_poll_s
        self._severities = SEVERITIES[SEVERITIES.index(settings.alert_min_severity):]
        self._backlog = timedelta(hours=settings.alert_backlog_hours)
        self._backoff = Backoff(settings.alert_retry_base_s, settings.alert_retry_max_s,
                                settings.alert_failing_after)
        self.channels = {name: Channel(name, url) for name, url in settings.alert_channels.items()}
        self._channel_sites: dict[str, set[str]] = {}  # a site manager's channel: the sites whose cases it gets
        for site_id, names in settings.site_alert_channels.items():
            for name in names:
                self._channel_sites.setdefault(name, set()).add(site_id)
        self.morning = MorningMail(engine, settings, now=self._now, rng=self._rng)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_channels: set[str] = set()
        self._failing = False
        self.counters = {"runs": 0, "queued": 0, "sent": 0, "failed": 0, "lost_leases": 0, "failures": 0}

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @property
    def idle(self) -> bool:
        """Nothing to do: no alert channel and no report channel."""
        return not self.channels and self.morning.idle

    def start(self) -> None:
        if self._thread is None and not self.idle:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="alert-courier", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            # A send under way may take up to SEND_TIMEOUT_S: not waited for (a daemon thread); its lease runs
            # out and the delivery is sent again by the next courier.
            self._thread.join(timeout=10)
            self._thread = None

    def notify(self) -> None:
        """Look for new cases now rather than at the next poll (safe from any thread)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._wake.wait(self._poll)
            self._wake.clear()

    def tick(self) -> None:
        """One pass: queue, send what is due, the morning report; a failure is logged when it starts and ends."""
        self.counters["runs"] += 1
        try:
            if self.channels:
                self.enqueue()
                self.send_due()
            self.morning.run_once()
        except sa.exc.SQLAlchemyError as exc:
            self._failed("the alert courier cannot use the database (%s); trying again every %gs",
                         type(exc).__name__, self._poll)
            return
        except Exception:  # the top of a long-running loop: the same work is due again next pass
            self._failed("the alert courier failed; trying again every %gs", self._poll, exc_info=True)
            return
        if self._failing:
            self._failing = False
            log.info("the alert courier runs again (%d failed passes)", self.counters["failures"])

    def _failed(self, message: str, *args: object, exc_info: bool = False) -> None:
        self.counters["failures"] += 1
        if not self._failing:
            self._failing = True
            log.error(message, *args, exc_info=exc_info)

    def enqueue(self) -> int:
        """Give each case due for delivery a pending row per channel that has none; returns how many."""
        now = self._now()
        since = now - self._backlog
        wanted: list[tuple[int, str]] = []
        # Looked for without a write transaction: an idle courier never takes SQLite's write lock.
        with self._engine.connect() as conn:
            for name in self.channels:
                has_row = sa.exists().where(alert_deliveries.c.alert_id == alerts.c.id,
                                            alert_deliveries.c.channel == name)
                query = sa.select(alerts.c.id).where(alerts.c.state == "open", alerts.c.raised_at >= since, ~has_row)
                if name in self._channel_sites:
                    # A site's own channel (its manager) gets every case of its sites, whatever the chain-wide
                    # minimum: a low feedback score is a warning HQ may not want, but the duty manager does.
                    query = query.where(alerts.c.site_id.in_(sorted(self._channel_sites[name])))
                else:
                    query = query.where(alerts.c.severity.in_(self._severities))
                ids = conn.execute(query.order_by(alerts.c.id).limit(500)).scalars().all()
                wanted += [(alert_id, name) for alert_id in ids]
        if wanted:
            with self._engine.begin() as conn:
                for alert_id, name in wanted:  # another courier may have queued it meanwhile: ignored
                    insert_or_ignore(conn, alert_deliveries, {"alert_id": alert_id, "channel": name,
                                                              "state": "pending", "attempts": 0, "next_at": now})
            self.counters["queued"] += len(wanted)
        return len(wanted)

    def send_due(self) -> int:
        """Claim the deliveries due and send them, one message per case and channel; returns how many went."""
        sent = 0
        while not self._stop.is_set():
            claimed = self._claim()
            if not claimed:
                return sent
            cases = self._cases({alert_id for alert_id, _, _, _ in claimed})
            for alert_id, channel, attempts, lease in claimed:
                if self._stop.is_set():
                    return sent  # the lease runs out and another pass sends it
                sent += self._deliver(cases[alert_id], self.channels[channel], attempts, lease)
            if len(claimed) < BATCH:
                return sent
        return sent

    def _claim(self) -> list[tuple[int, str, int, datetime]]:
        now = self._now()
        d = alert_deliveries.c
        due = sa.and_(d.state.in_(("pending", "failing")), d.next_at <= now, d.channel.in_(list(self.channels)))
        with self._engine.connect() as conn:
            if conn.execute(sa.select(d.alert_id).where(due).limit(1)).first() is None:
                return []
        lease = now + LEASE
        with self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # a second process on the same file waits its turn
            query = sa.select(d.alert_id, d.channel, d.attempts).where(due).order_by(d.next_at, d.alert_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query.limit(BATCH)).all()
            for row in rows:
                conn.execute(alert_deliveries.update().where(d.alert_id == row.alert_id, d.channel == row.channel)
                             .values(next_at=lease))
        return [(row.alert_id, row.channel, row.attempts, lease) for row in rows]

    def _cases(self, ids: set[int]) -> dict[int, Any]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(alerts, sites.c.name.label("site_name"))
                                .select_from(alerts.outerjoin(sites, sites.c.site_id == alerts.c.site_id))
                                .where(alerts.c.id.in_(sorted(ids)))).all()
        return {row.id: row for row in rows}

    def _renew(self, alert_id: int, channel: str, held: datetime) -> datetime | None:
        """Take the lease again just before sending; None when another courier holds it now."""
        renewed = self._now() + LEASE
        d = alert_deliveries.c
        with self._engine.begin() as conn:
            done = conn.execute(alert_deliveries.update()
                                .where(d.alert_id == alert_id, d.channel == channel, d.next_at == held,
                                       d.state.in_(("pending", "failing")))
                                .values(next_at=renewed)).rowcount
        return renewed if done == 1 else None

    def _deliver(self, case: Any, channel: Channel, attempts: int, held: datetime) -> int:
        lease = self._renew(case.id, channel.name, held)
        if lease is None:
            self.counters["lost_leases"] += 1
            return 0
        title, body = alert_message(case)
        error = channel.send(title=title, body=body, severity=case.severity)
        now = self._now()
        attempts += 1
        d = alert_deliveries.c
        mine = sa.and_(d.alert_id == case.id, d.channel == channel.name, d.next_at == lease)
        if error is None:
            values: dict[str, Any] = {"state": "sent", "sent_at": now, "next_at": None, "attempts": attempts}
        else:
            values = {"state": self._backoff.state(attempts), "attempts": attempts, "last_error": error,
                      "next_at": now + timedelta(seconds=self._backoff.delay(attempts, self._rng))}
        with self._engine.begin() as conn:
            conn.execute(alert_deliveries.update().where(mine).values(**values))
        self._channel_state(channel.name, error)
        if error is None:
            self.counters["sent"] += 1
            return 1
        self.counters["failed"] += 1
        return 0

    def _channel_state(self, name: str, error: str | None) -> None:
        if error is not None and name not in self._failing_channels:
            self._failing_channels.add(name)
            log.warning("alert channel %s fails (%s); its deliveries are retried with backoff", name, error)
        elif error is None and name in self._failing_channels:
            self._failing_channels.discard(name)
            log.info("alert channel %s delivers again", name)


def alert_message(case: Any) -> tuple[str, str]:
    """The title and plain-text body of a case's message: what, where, the figures and ids (the card as a
    masked token), and the case's path in the API."""
    reason = REASONS.get(case.code) or HUB_REASONS.get(case.code, case.code)
    where = case.site_name or case.site_id
    title = f"[Marquee] {case.severity}: {reason}{' at ' + where if where else ''}"
    figures = case.figures if isinstance(case.figures, dict) else {}
    ids = [("site", f"{case.site_name} ({case.site_id})" if case.site_name else case.site_id),
           ("device", case.device_id), ("till", case.till_id), ("cashier", case.cashier_id),
           ("staff", case.staff_id), ("member", case.member_id),
           ("card", masked_card(case.card_token) if case.card_token else None), ("sale", case.sale_id)]
    lines = [case.summary, "",
             f"Rule: {case.code}" + (f" (the box's action: {case.action})" if case.action else ""),
             "Figures: " + (", ".join(f"{key}={_short(value)}" for key, value in figures.items()) or "-"),
             *(f"{label.capitalize()}: {value}" for label, value in ids if value),
             f"Seen {case.count} time(s), first {_when(case.first_at)}, last {_when(case.last_at)}; "
             f"raised {_when(case.raised_at)}",
             f"Case: {API_CASE_PATH.format(id=case.id)} ({case.state})"]
    events = case.events if isinstance(case.events, list) else []
    if events:
        lines.append("Events: " + ", ".join(f"{each.get('device_id')}#{each.get('seq')}" for each in events[:10]
                                             if isinstance(each, dict)))
    return title, "\n".join(lines)


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else "-"
