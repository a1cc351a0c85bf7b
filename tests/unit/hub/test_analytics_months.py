"""The month grains: kept on ingest as the daily rows summed by month, summed again by a rebuild, and read for a
range's whole months with the same answers as the daily rows give (box office, occupancy, reports)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command

from cloud.analytics.box_office import box_office
from cloud.analytics.grains import Spans, spans
from cloud.analytics.occupancy import occupancy
from cloud.analytics.rebuild import rebuild_site
from cloud.db.analytics_tables import halls
from cloud.db.engine import alembic_config, migrate
from cloud.reports.sales import sales_sums
from tests.unit.hub.factories import Chain
from tests.unit.hub.test_analytics_rollups import MONTHS, add, by_month, held, ingest, sale, same, set_zone

START = datetime(2024, 1, 20, 9, 0, tzinfo=UTC)
"""Sales from 20 January 2024 (a leap year) to early May, in Paris and in UTC."""


def test_spans_cut_a_range_into_days_and_whole_months() -> None:
    assert spans(date(2024, 1, 20), date(2024, 5, 3)) == Spans(
        ((date(2024, 1, 20), date(2024, 1, 31)), (date(2024, 5, 1), date(2024, 5, 3))),
        (date(2024, 2, 1), date(2024, 4, 1)))
    assert spans(date(2024, 2, 1), date(2024, 2, 29)) == Spans((), (date(2024, 2, 1), date(2024, 2, 1)))
    assert spans(date(2023, 12, 1), date(2024, 1, 31)) == Spans((), (date(2023, 12, 1), date(2024, 1, 1)))
    assert spans(date(2024, 2, 1), date(2024, 2, 28)) == Spans(((date(2024, 2, 1), date(2024, 2, 28)),), None)
    assert spans(date(2024, 1, 2), date(2024, 2, 28)) == Spans(((date(2024, 1, 2), date(2024, 2, 28)),), None)
    assert spans(date(2024, 3, 5), date(2024, 3, 5)) == Spans(((date(2024, 3, 5), date(2024, 3, 5)),), None)
    assert spans(date(2024, 3, 5), date(2024, 3, 4)) == Spans((), None)
    assert spans(date(2023, 12, 9), date(2024, 12, 8)) == Spans(
        ((date(2023, 12, 9), date(2023, 12, 31)), (date(2024, 12, 1), date(2024, 12, 8))),
        (date(2024, 1, 1), date(2024, 11, 1)))


def months_of_sales(engine: sa.Engine) -> list[Chain]:
    """Two sites' sales over three and a half months, ingested in batches a minute after the last sale."""
    rng = random.Random(11)
    chains = [Chain("site-a", "box-a"), Chain("site-b", "box-b")]
    for chain in chains:
        chain.register(engine)
    set_zone(engine, "site-a", "Europe/Paris")
    with engine.begin() as conn:
        conn.execute(sa.insert(halls), [{"site_id": "site-a", "hall": "1", "seats": 120, "updated_at": START}])
    for number in range(160):
        chain = chains[number % 2]
        at = START + timedelta(hours=number * 16 + rng.randint(0, 10), minutes=rng.randint(0, 59))
        payload = sale(chain.site_id, rng, number)
        for item in payload["items"]:  # shows on the sale's own evening, some across a month's last midnight
            if item.get("showtime"):
                item["showtime"] = (at.replace(hour=22, minute=30)).isoformat().replace("+00:00", "Z")
        add(chain, payload, at)
    for chain in chains:
        for first in range(1, len(chain.events) + 1, 9):
            last = min(len(chain.events), first + 8)
            ingest(engine, chain, first, last, received_at=chain.events[last - 1].occurred_at + timedelta(minutes=1))
    return chains


def summed(rows: dict[tuple[Any, ...], tuple[int, ...]], first: date, last: date,
           key: Any) -> dict[Any, tuple[int, ...]]:
    """Daily rollup rows of days first..last summed by `key(row key)`."""
    sums: dict[Any, list[int]] = defaultdict(lambda: [0] * 6)
    for each, value in rows.items():
        if first <= each[1] <= last:
            total = sums[key(each)]
            total[:len(value)] = [a + b for a, b in zip(total, value, strict=False)]
    return {name: tuple(value) for name, value in sums.items()}


RANGES = [(date(2024, 1, 20), date(2024, 5, 3)), (date(2024, 2, 1), date(2024, 2, 29)),
          (date(2024, 1, 31), date(2024, 3, 1)), (date(2024, 2, 10), date(2024, 4, 30)),
          (date(2024, 3, 31), date(2024, 3, 31)), (date(2024, 1, 1), date(2024, 12, 31))]


def test_whole_months_read_the_month_grain_and_answer_as_the_days_do(engine: sa.Engine) -> None:
    months_of_sales(engine)
    same(engine)  # every grain, the months included, equals the brute-force sum of the stored sales
    stored = held(engine)
    assert {key[1] for key in stored["sales_monthly"]} == {date(2024, month, 1) for month in range(1, 6)}
    with engine.connect() as conn:
        for first, last in RANGES:
            for group, daily, key in (("film", "sales_daily", lambda k: (k[2], k[4])),
                                      ("site", "site_dayparts", lambda k: (k[0], k[3])),
                                      ("hall", "sales_daily", lambda k: (f"{k[0]}/{k[3]}", k[4])),
                                      ("hour", "site_hourly", lambda k: (f"{k[2]:02d}", k[3])),
                                      ("daypart", "site_dayparts", lambda k: (k[2], k[3]))):
                found = {(row.key, row.currency): (row.tickets, row.ticket_revenue, row.concession_revenue,
                                                   row.concession_items, row.sales, row.member_sales)
                         for row in box_office(conn, group=group, sites=None, first=first, last=last)}  # type: ignore[arg-type]
                assert found == summed(stored[daily], first, last, key), (group, first, last)
            by_film = {key: (value.tickets, value.sales) for key, value in
                       sales_sums(conn, first=first, last=last, sites=frozenset({"site-a"}), by="film").items()}
            assert by_film == {key: (value[0], value[4]) for key, value in summed(
                {k: v for k, v in stored["sales_daily"].items() if k[0] == "site-a"}, first, last,
                lambda k: (k[2], k[4])).items()}
            shows = {row.key: (row.shows, row.tickets, row.seats) for row in
                     occupancy(conn, group="hall", sites=None, first=first, last=last)}
            expected = {f"{site}/{hall}": (value[0], value[1], value[0] * 120 if (site, hall) == ("site-a", "1")
                                                                   else None)
                        for (site, hall), value in summed(stored["show_daily"], first, last,
                                                          lambda k: (k[0], k[3])).items()}
            assert shows == expected, (first, last)
            parts = {row.key: (row.shows, row.tickets) for row in
                     occupancy(conn, group="daypart", sites=None, first=first, last=last)}
            assert parts == {part: value[:2] for part, value in summed(stored["show_dayparts"], first, last,
                                                                        lambda k: k[2]).items()}, (first, last)
    assert any(summed(stored["show_daily"], *RANGES[0], lambda k: k[0]).values())


def test_a_rebuild_of_some_days_sums_their_months_again_from_the_daily_rows(engine: sa.Engine) -> None:
    months_of_sales(engine)
    set_zone(engine, "site-b", "America/New_York")  # the stored days of site-b are UTC ones until rebuilt
    rebuild_site(engine, site_id="site-b", first=date(2024, 2, 10), last=date(2024, 3, 5))
    stored = held(engine)
    for monthly, daily in MONTHS.items():
        assert stored[monthly] == by_month(stored[daily]), monthly  # February and March too
    rebuild_site(engine, site_id="site-b")
    same(engine)


def test_the_migration_fills_the_months_from_the_daily_rows_already_stored(engine: sa.Engine) -> None:
    months_of_sales(engine)
    expected = held(engine)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0010")
        assert not any(sa.inspect(conn).has_table(monthly) for monthly in MONTHS)
    migrate(engine)
    assert held(engine) == expected and all(expected[monthly] for monthly in MONTHS)
