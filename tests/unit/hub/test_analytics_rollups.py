"""The box-office and occupancy rollups kept on ingest, against a brute-force sum over the stored events: random
batches, redeliveries, a conflict resolution taking events back out, local days across midnight and a DST change,
untrusted clocks, and `marquee-hub analytics rebuild`."""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cloud.analytics.dayparts import day_part
from cloud.analytics.rebuild import rebuild_site
from cloud.api.app import create_app
from cloud.cli import main
from cloud.db.analytics_tables import (
    sales_daily,
    sales_hourly,
    show_daily,
    show_dayparts,
    show_sales,
    site_dayparts,
    site_hourly,
)
from cloud.db.engine import migrate
from cloud.db.metadata import metadata
from cloud.db.schema import events, sites
from cloud.ingest.conflicts import resolve_conflicts
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from protocol.chain import seal
from protocol.events import Event
from protocol.ids import uuid7
from tests.unit.hub.factories import Chain

NOW = datetime(2025, 3, 30, 12, 0, tzinfo=UTC)
SHOWS = [None, datetime(2025, 3, 29, 19, 0, tzinfo=UTC), datetime(2025, 3, 29, 22, 30, tzinfo=UTC),
         datetime(2025, 3, 30, 9, 0, tzinfo=UTC)]
AMOUNT_TABLES = (sales_hourly, sales_daily, site_hourly, site_dayparts, show_sales)
MONTHS = {"sales_monthly": "sales_daily", "site_hours_monthly": "site_hourly",
          "site_dayparts_monthly": "site_dayparts", "show_monthly": "show_daily",
          "show_dayparts_monthly": "show_dayparts"}
"""Each month grain and the daily grain it sums."""
ALL_TABLES = (*AMOUNT_TABLES, show_daily, show_dayparts, *[metadata.tables[name] for name in MONTHS])


def sale(site_id: str, rng: random.Random, number: int) -> dict[str, Any]:
    """A random sale: 0-2 ticket lines (films, halls, shows, some without), 0-2 concession lines, a card or not."""
    items: list[dict[str, Any]] = []
    for _ in range(rng.choice([0, 1, 1, 2])):
        showtime = rng.choice(SHOWS)
        items.append({"kind": "ticket", "sku": "adult", "film": rng.choice(["Dune", "Up", None]),
                      "hall": rng.choice(["1", "2", None]), "quantity": rng.randint(1, 3),
                      "unit_price": rng.choice([0, 800, 1200]),
                      **({"showtime": showtime.isoformat().replace("+00:00", "Z")} if showtime else {})})
    for _ in range(rng.choice([0, 1, 2]) if items else rng.randint(1, 2)):
        items.append({"kind": "concession", "sku": "popcorn", "quantity": rng.randint(1, 2), "unit_price": 450})
    rng.shuffle(items)
    card = rng.choice(["ab" * 16, None])
    return {"site_id": site_id, "till_id": "till-1", "cashier_id": "c-7", "sale_id": f"s-{number}",
            "currency": "EUR", "items": items, "total": sum(item["quantity"] * item["unit_price"] for item in items),
            "card_token": card, "loyalty": {"status": "unavailable" if card else "no_card"}}


def add(chain: Chain, payload: dict[str, Any], at: datetime, *, clock_ok: bool = True) -> Event:
    """Seal the next event of `chain` with its own clock state."""
    event = seal(type="sale.recorded", device_id=chain.device_id, seq=len(chain.events) + 1,
                 event_id=uuid7(int(at.timestamp() * 1000), os.urandom(10)), occurred_at=at, clock_ok=clock_ok,
                 prev_hash=chain.head, payload=payload)
    chain.events.append(event)
    return event


def ingest(engine: sa.Engine, chain: Chain, first: int, last: int, received_at: datetime = NOW) -> None:
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(first, last), site_id=chain.site_id, received_at=received_at)


def set_zone(engine: sa.Engine, site_id: str, timezone: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(sites).where(sites.c.site_id == site_id).values(timezone=timezone))


def held(engine: sa.Engine) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """Every rollup table's rows (key -> amounts), rows of zeros left out."""
    found: dict[str, dict[tuple[Any, ...], tuple[int, ...]]] = {}
    with engine.connect() as conn:
        for table in ALL_TABLES:
            key = [column for column in table.primary_key.columns]
            amounts = [column for column in table.columns if column.name in (
                "tickets", "ticket_revenue", "concession_revenue", "concession_items", "sales", "member_sales",
                "shows", "show_day", "show_hour")]
            found[table.name] = {tuple(row[:len(key)]): tuple(row[len(key):])
                                 for row in conn.execute(sa.select(*key, *amounts))
                                 if any(value for value in row[len(key):] if isinstance(value, int))}
    return found


def brute_force(engine: sa.Engine) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """The rollups summed afresh from every stored sale, line by line, as docs/analytics.md states the rules."""
    with engine.connect() as conn:
        zones = {row.site_id: ZoneInfo(row.timezone or "UTC") for row in conn.execute(sa.select(sites))}
        stored = conn.execute(sa.select(events.c.site_id, events.c.body, events.c.received_at)
                              .where(events.c.type == "sale.recorded")).all()
    sums: dict[str, dict[tuple[Any, ...], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0] * 6))
    show_rows: dict[tuple[Any, ...], list[Any]] = {}
    for site_id, body, received_at in stored:
        occurred = datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00"))
        believed = occurred <= received_at + timedelta(minutes=5) and (
            body["clock_ok"] or occurred >= datetime(2020, 1, 1, tzinfo=UTC))
        local = (occurred if believed else received_at).astimezone(zones[site_id])
        if "payload_refused" in body:
            continue
        payload = body["payload"]
        tickets = [item for item in payload["items"] if item["kind"] == "ticket"]
        extras = [item for item in payload["items"] if item["kind"] != "ticket"]
        lines = [(item, [item["quantity"], item["quantity"] * item["unit_price"], 0, 0, 0, 0]) for item in tickets]
        whole = [0, 0, sum(i.get("quantity", 1) * i["unit_price"] for i in extras),
                 sum(i.get("quantity", 1) for i in extras), 1,
                 1 if payload.get("card_token") else 0]
        if lines:
            lines[0] = (lines[0][0], [a + b for a, b in zip(lines[0][1], whole, strict=True)])
        else:
            lines = [({}, whole)]
        for item, amounts in lines:
            film, hall, cur = item.get("film") or "", item.get("hall") or "", payload["currency"]
            shown = (datetime.fromisoformat(item["showtime"].replace("Z", "+00:00"))
                     if item.get("showtime") else None)
            part = day_part((shown.astimezone(zones[site_id]) if shown else local).hour)
            day, hour = local.date(), local.hour
            for table, key in (("sales_hourly", (site_id, day, hour, film, hall, cur)),
                               ("sales_daily", (site_id, day, film, hall, cur)),
                               ("site_hourly", (site_id, day, hour, cur)),
                               ("site_dayparts", (site_id, day, part, cur))):
                sums[table][key] = [a + b for a, b in zip(sums[table][key], amounts, strict=True)]
            if shown is not None:
                at = shown.astimezone(zones[site_id])
                row = show_rows.setdefault((site_id, hall, shown, film, cur), [at.date(), at.hour, *[0] * 6])
                row[2:] = [a + b for a, b in zip(row[2:], amounts, strict=True)]
    result = {name: {key: tuple(value) for key, value in rows.items() if any(value)} for name, rows in sums.items()}
    result["show_sales"] = {key: tuple(value) for key, value in show_rows.items()}
    for name, grain in (("show_daily", lambda k, v: (k[0], v[0], k[3], k[1])),
                        ("show_dayparts", lambda k, v: (k[0], v[0], day_part(v[1]), k[1]))):
        counts: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
        for key, value in show_rows.items():
            counts[grain(key, value)][0] += 1
            counts[grain(key, value)][1] += value[2]
        result[name] = {key: (value[0], value[1]) for key, value in counts.items()}
    for monthly, daily in MONTHS.items():
        result[monthly] = by_month(result.get(daily, {}))
    return result


def by_month(daily: dict[tuple[Any, ...], tuple[int, ...]]) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Daily rows (site, day, ...) summed into month rows (site, the month's first day, ...)."""
    months: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for key, value in daily.items():
        month = (key[0], key[1].replace(day=1), *key[2:])
        months[month] = tuple(a + b for a, b in zip(months.get(month, (0,) * len(value)), value, strict=True))
    return months


def same(engine: sa.Engine) -> None:
    expected, found = brute_force(engine), held(engine)
    for table in ALL_TABLES:
        assert found[table.name] == expected.get(table.name, {}), table.name


def test_rollups_equal_a_brute_force_sum_through_redeliveries_and_a_conflict(engine: sa.Engine) -> None:
    rng = random.Random(10)
    chains = [Chain("site-a", "box-a1"), Chain("site-a", "box-a2"), Chain("site-b", "box-b")]
    for chain in chains:
        chain.register(engine)
    set_zone(engine, "site-a", "Europe/Paris")  # site-b: the rule bundle's zone (UTC by default)
    start = datetime(2025, 3, 29, 20, 0, tzinfo=UTC)  # across midnight in Paris and in UTC
    for number in range(60):
        chain = rng.choice(chains)
        add(chain, sale(chain.site_id, rng, number), start + timedelta(minutes=rng.randint(0, 8 * 60)))
    for chain in chains:
        done = 0
        while done < len(chain.events):
            last = min(len(chain.events), done + rng.randint(1, 8))
            ingest(engine, chain, done + 1, last)
            if rng.random() < 0.4:
                ingest(engine, chain, max(1, done - 2), last)  # redelivered, partly overlapping
            done = last
    same(engine)

    hub_side = chains[0]
    box_side = Chain("site-a", "box-a1", key=hub_side.key, events=list(hub_side.events[:3]))
    for number in range(4):
        add(box_side, sale("site-a", rng, 100 + number), start + timedelta(hours=2, minutes=number))
    ingest(engine, box_side, 1, len(box_side.events))  # a conflict at seq 4: nothing of it stored
    with engine.begin() as conn:
        resolve_conflicts(conn, device_id="box-a1", keep="box", at=NOW, note=None)
    same(engine)  # the archived sales left every rollup, emptied rows and shows with them
    ingest(engine, box_side, 1, len(box_side.events))
    same(engine)


SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no SQL behaviour at stake


@SQLITE_ONLY
def test_local_days_across_midnight_and_a_dst_change_and_untrusted_clocks(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-a")
    chain.register(engine)
    set_zone(engine, "site-a", "Europe/Paris")  # summer time from 2025-03-30 01:00 UTC
    rng = random.Random(3)
    times = [datetime(2025, 3, 29, 22, 59, tzinfo=UTC),  # 23:59 on the 29th in Paris
             datetime(2025, 3, 29, 23, 0, tzinfo=UTC),  # 00:00 on the 30th
             datetime(2025, 3, 30, 0, 30, tzinfo=UTC),  # 01:30 (CET)
             datetime(2025, 3, 30, 1, 30, tzinfo=UTC)]  # 03:30 (CEST): no 02:00 that night
    for number, at in enumerate(times):
        add(chain, {**sale("site-a", rng, number), "items": [{"kind": "concession", "sku": "cola", "unit_price": 300}],
                    "total": 300}, at)
    received = datetime(2025, 3, 30, 9, 0, tzinfo=UTC)  # 11:00 in Paris
    add(chain, {**sale("site-a", rng, 10), "items": [{"kind": "concession", "sku": "cola", "unit_price": 300}],
                "total": 300}, datetime(2019, 1, 1, tzinfo=UTC), clock_ok=False)  # a box that never set its clock
    add(chain, {**sale("site-a", rng, 11), "items": [{"kind": "concession", "sku": "cola", "unit_price": 300}],
                "total": 300}, datetime(2031, 5, 1, tzinfo=UTC))  # a clock years ahead
    ingest(engine, chain, 1, 6, received_at=received)

    with engine.connect() as conn:
        hours = conn.execute(sa.select(sales_hourly.c.day, sales_hourly.c.hour, sales_hourly.c.sales)
                             .order_by(sales_hourly.c.day, sales_hourly.c.hour)).all()
    assert [tuple(row) for row in hours] == [(date(2025, 3, 29), 23, 1), (date(2025, 3, 30), 0, 1),
                                             (date(2025, 3, 30), 1, 1), (date(2025, 3, 30), 3, 1),
                                             (date(2025, 3, 30), 11, 2)]
    same(engine)


def test_rebuild_equals_ingest_after_a_time_zone_change_and_replaces_only_the_days_asked(
        engine: sa.Engine) -> None:
    rng = random.Random(7)
    chain = Chain("site-b", "box-b")
    chain.register(engine)
    start = datetime(2025, 3, 29, 18, 0, tzinfo=UTC)
    for number in range(30):
        add(chain, sale("site-b", rng, number), start + timedelta(minutes=23 * number))
    ingest(engine, chain, 1, 30)
    set_zone(engine, "site-b", "America/New_York")
    assert held(engine) != brute_force(engine)  # the stored days are UTC ones

    done = rebuild_site(engine, site_id="site-b")

    assert (done.sales, done.reread) == (30, False)
    same(engine)
    with engine.begin() as conn:
        for table in ALL_TABLES:
            conn.execute(sa.delete(table))
    rebuild_site(engine, site_id="site-b", first=date(2025, 3, 29), last=date(2025, 3, 29), page=7)
    one_day = {table: {key: value for key, value in rows.items()
                       if (value[0] if table == "show_sales" else key[1]) == date(2025, 3, 29)}
               for table, rows in brute_force(engine).items()}
    for monthly, daily in MONTHS.items():
        one_day[monthly] = by_month(one_day[daily])  # March summed again from the one day rebuilt
    assert held(engine) == {table.name: one_day.get(table.name, {}) for table in ALL_TABLES}
    assert any(one_day.values()) and all(key[1] == date(2025, 3, 29) for key in held(engine)["site_dayparts"])


def test_a_rebuild_while_ingest_runs_counts_every_sale_once(engine: sa.Engine) -> None:
    rng = random.Random(8)
    chain = Chain("site-a", "box-a")
    chain.register(engine)
    for number in range(40):
        add(chain, sale("site-a", rng, number), NOW - timedelta(hours=12) + timedelta(minutes=17 * number))
    ingest(engine, chain, 1, 30)
    pending = [lambda: ingest(engine, chain, 31, 40)]  # a batch lands while the first pass reads

    def meanwhile(site_id: str, sales: int) -> None:
        if pending:
            pending.pop()()

    done = rebuild_site(engine, site_id="site-a", progress=meanwhile, page=10)
    assert (done.sales, done.reread) == (40, False) and not pending
    same(engine)

    pending.append(lambda: set_zone(engine, "site-a", "Asia/Tokyo"))  # the zone changes during the first pass
    again = rebuild_site(engine, site_id="site-a", progress=meanwhile, page=10)
    assert (again.sales, again.reread) == (40, True)
    same(engine)


def test_the_rebuild_command_reports_each_site(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.setenv("MARQUEE_HUB_DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    engine = sa.create_engine(url)
    try:
        chain = Chain("riverside", "box-r")
        chain.register(engine)
        add(chain, sale("riverside", random.Random(1), 1), NOW)
        ingest(engine, chain, 1, 1)
        with engine.begin() as conn:
            conn.execute(sa.delete(site_dayparts))
        result = runner.invoke(main, ["analytics", "rebuild", "--site", "riverside", "--from", "2025-03-30"])
        assert result.exit_code == 0, result.output
        assert "[1/1] riverside: 1 sales" in result.output and "rebuilt 1 site(s) from 1 sales" in result.output
        same(engine)
        refused = runner.invoke(main, ["analytics", "rebuild", "--site", "nowhere"])
        assert refused.exit_code != 0 and "site nowhere is not registered" in refused.output
        with engine.begin() as conn:  # a table gone under the hub: one clear line, no traceback
            conn.execute(sa.text("DROP TABLE sales_monthly"))
        for command in (["analytics", "rebuild"], ["report", "month", "2025-03", "--output", str(tmp_path / "r.csv")]):
            broken = runner.invoke(main, command)
            assert broken.exit_code == 1 and "database error: " in broken.output, broken.output
            assert "Traceback" not in broken.output and not isinstance(broken.exception, sa.exc.SQLAlchemyError)
    finally:
        engine.dispose()


@SQLITE_ONLY
def test_a_batch_without_sales_writes_no_rollup(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-a")
    chain.register(engine)
    chain.add({"door": "north"}, type="door.opened")
    add(chain, {**sale("site-a", random.Random(2), 2), "currency": "euro"}, NOW)  # refused: kept, not counted
    ingest(engine, chain, 1, 2)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 2
    assert all(not rows for rows in held(engine).values())


@SQLITE_ONLY
def test_with_the_rollups_off_ingest_skips_them_and_a_rebuild_catches_up(db_url: str) -> None:
    app = create_app(HubSettings(database_url=db_url, analytics_rollups=False), start_ingest=False)
    engine: sa.Engine = app.state.ingest_engine
    migrate(engine)
    chain = Chain("site-a", "box-a")
    chain.register(engine)
    add(chain, sale("site-a", random.Random(4), 1), NOW)
    ingest(engine, chain, 1, 1)
    assert all(not rows for rows in held(engine).values())

    rebuild_site(engine, site_id="site-a")

    assert held(engine)["site_dayparts"] and held(engine) == brute_force(engine)
    engine.dispose()


WRITES = re.compile(r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)
LOCK_GROUPS = {"box_office": "box office", "members": "members", "member_ledger": "members",
               "staff_activity": "staff activity", **{table.name: "analytics rollups" for table in ALL_TABLES}}


def lock_order(engine: sa.Engine, work: Any) -> list[str]:
    """The groups of rows `work` writes, in the order it first writes each (the order it takes their row locks)."""
    seen: list[str] = []

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        found = WRITES.match(statement)
        group = LOCK_GROUPS.get(found.group(1).lower()) if found else None
        if group is not None and group not in seen:
            seen.append(group)

    sa.event.listen(engine, "before_cursor_execute", on_statement)
    try:
        work()
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_statement)
    return seen


@SQLITE_ONLY
def test_a_resolution_writes_rows_in_the_order_ingest_does(engine: sa.Engine) -> None:
    # A resolution and a batch of another box of the site run at once on PostgreSQL: taking the rows of
    # members and of the rollups in opposite orders, each would wait for the other (a deadlock).
    hub_side = Chain("site-a", "box-a")
    hub_side.register(engine)
    hub_side.sales(2)
    ingested = lock_order(engine, lambda: ingest(engine, hub_side, 1, 2))
    box_side = Chain("site-a", "box-a", key=hub_side.key, events=list(hub_side.events[:1]))
    box_side.sales(1)
    ingest(engine, box_side, 1, 2)  # a conflict at seq 2

    def resolve() -> None:
        with engine.begin() as conn:
            resolve_conflicts(conn, device_id="box-a", keep="box", at=NOW, note=None)

    resolved = lock_order(engine, resolve)
    assert ingested == ["box office", "members", "staff activity", "analytics rollups"]
    assert resolved == ingested
    same(engine)
