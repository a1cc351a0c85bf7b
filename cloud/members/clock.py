"""The rules clock: the hub runs the time-based rules (expiry, inactivity burn, monthly bonus, tier reviews)
when their moment comes, ledgers what they did and sends the new accounts to the boxes through the directory.

A thread beside ingest, started by the IngestWorker. Each run takes the members whose `account_due` has
passed, 500 at a time in member order, each batch in its own transaction; on PostgreSQL with FOR UPDATE SKIP
LOCKED, so several hub processes run clocks side by side and never wait on a member that ingest holds (it
is taken at the next run). A box does the same to its own view at the same moments, so the two agree.

A new bundle may bring a rule due sooner than the dues stored: the clock then recomputes every member's.

One member whose advance fails (data this hub cannot read) is skipped, in a savepoint of its own: it stays
due, is tried again at the next run, and never holds up the others. Its id is logged once (member ids are
not personal data).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from cloud.db.schema import members
from cloud.members.accounts import advance_member, rulebook, stored_account
from cloud.members.directory import publish_members
from cloud.members.overdrafts import check_overdraft

log = logging.getLogger(__name__)
BATCH = 500


class RulesClock:
    """`start()`, `stop()`; `run_once(now)` runs the rules due at `now` (what each tick does, at the present)."""

    def __init__(self, engine: sa.Engine, period_s: float = 60.0, *, now: Callable[[], datetime] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._period = period_s
        self._now = now or (lambda: datetime.now(UTC))
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dues_for: tuple[int, str] | None = None
        self._failing = False
        self._failed_members: set[str] = set()
        self.counters = {"runs": 0, "members": 0, "published": 0, "dues_refreshed": 0, "failures": 0,
                         "member_failures": 0}

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rules-clock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self._period):
                return

    def tick(self) -> None:
        """One run at the present; never raises (a failure is logged when it starts and when it ends)."""
        self.counters["runs"] += 1
        try:
            self.refresh_dues()
            self.run_once(self._now())
        except ValidationError as exc:  # a stored account or bundle this hub cannot read: field names only
            fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
            self._failed("the rules clock cannot read a stored %s (fields: %s); trying again every %gs",
                         exc.title, fields[:200], self._period)
            return
        except Exception:  # the top of a long-running loop: the same members are due again next tick
            self._failed("the rules clock failed; trying again every %gs", self._period, exc_info=True)
            return
        if self._failing:
            self._failing = False
            log.info("the rules clock runs again (%d failed runs)", self.counters["failures"])

    def _failed(self, message: str, *args: object, exc_info: bool = False) -> None:
        self.counters["failures"] += 1
        if not self._failing:
            self._failing = True
            log.error(message, *args, exc_info=exc_info)

    def run_once(self, now: datetime) -> int:
        """Apply the time-based rules due by `now` to every member concerned; returns how many were advanced."""
        after, total = "", 0
        due = sa.and_(members.c.account_due <= now, members.c.member_id > sa.bindparam("after"))
        while True:
            # Looked at first without a transaction that writes: an idle clock never holds up ingest.
            with self._engine.connect() as conn:
                if conn.execute(sa.select(members.c.member_id).where(due).limit(1), {"after": after}).first() is None:
                    return total
            with self._engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    # pysqlite begins a transaction at the first write only: a savepoint before it would be the
                    # outermost transaction, and releasing it a commit. IMMEDIATE: the write lock now, waited for.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                book = rulebook(conn)
                query = (sa.select(members.c.member_id, members.c.programme, members.c.account, members.c.balance)
                         .where(due).order_by(members.c.member_id).limit(BATCH))
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                rows = conn.execute(query, {"after": after}).all()
                changed, advanced = [], 0
                for row in rows:
                    try:
                        with conn.begin_nested():
                            values, news = advance_member(conn, row, book, now=now)
                            if news:
                                values["updated_at"] = now
                            conn.execute(members.update().where(members.c.member_id == row.member_id)
                                         .values(**values))
                            if row.balance < 0 and values["balance"] != row.balance:  # a bonus may settle a debt
                                check_overdraft(conn, row.member_id, values["balance"], set(), now)
                    except Exception as exc:  # one member's data must not hold up every other's
                        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
                            raise  # the database went away: nobody can be advanced, the tick says so
                        self._member_failed(row.member_id, exc)
                        continue
                    advanced += 1
                    if news:
                        changed.append(row.member_id)
                    if row.member_id in self._failed_members:
                        self._failed_members.discard(row.member_id)
                        log.info("the rules clock advanced member %s again", row.member_id)
                published = publish_members(conn, changed, now)
            total += advanced
            self.counters["members"] += advanced
            self.counters["published"] += published
            if published and self._on_change is not None:
                self._on_change()
            if len(rows) < BATCH or self._stop.is_set():  # stopping: the rest are due still, for the next run
                return total
            after = rows[-1].member_id  # past the last taken, advanced or not: a failed one waits for the next run

    def _member_failed(self, member_id: str, exc: Exception) -> None:
        self.counters["member_failures"] += 1
        if member_id in self._failed_members:
            return
        self._failed_members.add(member_id)
        if isinstance(exc, ValidationError):  # field names only, never the values
            fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
            log.error("the rules clock cannot advance member %s (a stored %s does not validate; fields: %s); "
                      "skipped, and tried again every run", member_id, exc.title, fields[:200])
        else:
            log.error("the rules clock cannot advance member %s; skipped, and tried again every run", member_id,
                      exc_info=True)

    def refresh_dues(self) -> int:
        """Once per bundle: every member's due under it (a new rule may be due sooner than the one stored);
        returns how many changed."""
        with self._engine.connect() as conn:
            book = rulebook(conn)
        key = book.key
        if key == self._dues_for:
            return 0
        after, changed = "", 0
        columns = (members.c.member_id, members.c.programme, members.c.account, members.c.account_due)

        def fresh(row: Any) -> tuple[bool, datetime | None]:
            """Whether the row's due differs from the one under `book`, and that one."""
            account = stored_account(row.account)
            if account is None:
                return False, None
            due = book.due(account, row.programme)
            return due != row.account_due, due

        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(sa.select(*columns).where(members.c.member_id > after)
                                    .order_by(members.c.member_id).limit(BATCH)).all()
            ids = [row.member_id for row in rows if fresh(row)[0]]
            if ids:
                with self._engine.begin() as conn:
                    query = sa.select(*columns).where(members.c.member_id.in_(ids)).order_by(members.c.member_id)
                    if conn.dialect.name == "postgresql":
                        query = query.with_for_update(skip_locked=True)  # ingest sets the due of those it holds
                    for row in conn.execute(query).all():
                        differs, due = fresh(row)
                        if differs:
                            conn.execute(members.update().where(members.c.member_id == row.member_id)
                                         .values(account_due=due))
                            changed += 1
            if len(rows) < BATCH:
                break
            if self._stop.is_set():
                return changed
            after = rows[-1].member_id
        self._dues_for = key
        self.counters["dues_refreshed"] += changed
        return changed
