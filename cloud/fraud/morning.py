"""The morning mail: yesterday's fraud report (`cloud.fraud.report`), sent once a day from `report_hour` (local
to the running bundle's time zone) to every `report_channels` target, the CSV attached. Run by the courier's
thread (`cloud.fraud.courier`).

What was sent is remembered in `report_runs`, per day and channel: a process claims a channel's report before
it sends it, so a restart does not send it again and two hub processes never both send it; a claim left by a
process that died is taken over after `STALE_CLAIM`. A failed send gives its claim back and is retried with
the alert backoff, logged once when it starts failing and once when it goes again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from cloud.db.dialect import insert_or_ignore
from cloud.db.fraud_tables import report_runs
from cloud.fraud.channels import Attachment, Channel
from cloud.fraud.report import csv_filename, daily_report, mail_text, report_csv
from cloud.members.accounts import running_bundle
from cloud.settings import HubSettings
from protocol.calendar import local

log = logging.getLogger(__name__)
STALE_CLAIM = timedelta(minutes=10)
"""A claim older than this, never marked sent, belongs to a process that stopped mid-send: taken over."""


class MorningMail:
    """`run_once()`: send yesterday's report to each report channel that has not had it today, when due."""

    def __init__(self, engine: sa.Engine, settings: HubSettings, *, now: Callable[[], datetime],
                 rng: random.Random) -> None:
        self._engine = engine
        self._now = now
        self._rng = rng
        self._hour = settings.report_hour
        self._base = settings.alert_retry_base_s
        self._longest = settings.alert_retry_max_s
        self.channels = {name: Channel(name, url) for name, url in settings.report_channels.items()}
        self.sent: dict[str, date] = {}
        """The local day each channel was last sent a report on (the report is of the day before)."""
        self._retry: dict[str, tuple[int, datetime]] = {}

    @property
    def idle(self) -> bool:
        return not self.channels

    def due(self, now: datetime) -> date | None:
        """Today's local date when the report hour has come, else None."""
        with self._engine.connect() as conn:
            tz = running_bundle(conn).timezone
        today = local(now, tz)
        return today.date() if today.hour >= self._hour else None

    def run_once(self) -> int:
        """Send where due; returns how many channels took the report."""
        if not self.channels:
            return 0
        now = self._now()
        today = self.due(now)
        if today is None:
            return 0
        day = today - timedelta(days=1)
        waiting = [name for name in self.channels if self.sent.get(name) != today
                   and (name not in self._retry or self._retry[name][1] <= now) and self._claim(day, name, now)]
        if not waiting:
            return 0
        with self._engine.connect() as conn:
            report = daily_report(conn, day=day, now=now)
        title, body = mail_text(report)
        attachment = Attachment(csv_filename(report), report_csv(report).encode("utf-8-sig"))
        sent = 0
        for name in waiting:
            error = self.channels[name].send(title=title, body=body, attachment=attachment)
            self._settle(day, name, now, sent=error is None)
            if error is None:
                self.sent[name] = today
                if self._retry.pop(name, None) is not None:
                    log.info("report channel %s took the fraud report of %s", name, day)
                sent += 1
                continue
            failures = self._retry.get(name, (0, now))[0] + 1
            delay = min(self._longest, self._base * 2 ** (failures - 1)) * self._rng.uniform(0.8, 1.0)
            self._retry[name] = (failures, now + timedelta(seconds=delay))
            if failures == 1:
                log.warning("report channel %s fails (%s); the fraud report of %s is retried with backoff",
                            name, error, day)
        return sent

    def _claim(self, day: date, channel: str, now: datetime) -> bool:
        """True when this process may send `day`'s report to `channel`: not sent, and not being sent elsewhere."""
        with self._engine.begin() as conn:
            if insert_or_ignore(conn, report_runs, {"day": day, "channel": channel, "claimed_at": now}):
                return True
            taken = conn.execute(report_runs.update().where(
                report_runs.c.day == day, report_runs.c.channel == channel, report_runs.c.sent_at.is_(None),
                report_runs.c.claimed_at < now - STALE_CLAIM).values(claimed_at=now))
            return bool(taken.rowcount)

    def _settle(self, day: date, channel: str, now: datetime, *, sent: bool) -> None:
        """Mark the claim sent, or give it back so a later pass (of any process) tries again."""
        with self._engine.begin() as conn:
            where = (report_runs.c.day == day, report_runs.c.channel == channel)
            if sent:
                conn.execute(report_runs.update().where(*where).values(sent_at=now))
            else:
                conn.execute(report_runs.delete().where(*where, report_runs.c.sent_at.is_(None)))
