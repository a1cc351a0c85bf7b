"""The daily fraud report: figures per card, cashier and till from `staff_activity` rows, the staff member behind
a card, the limits at, below and above, JSON and CSV through the API (formula cells neutralised), and the
morning mail with the CSV attached reaching a real SMTP server once a day at the report hour."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import publish_draft
from cloud.db.fraud_tables import staff, staff_activity, staff_badges
from cloud.db.schema import member_cards, members
from cloud.db.users import add_user
from cloud.fraud.courier import Courier
from cloud.fraud.report import daily_report, report_csv, safe_cell
from cloud.settings import HubSettings, load_settings
from tests.support.hub_users import hq_actions
from tests.support.smtp_server import SmtpServer, attachments, body_text

DAY = date(2025, 3, 14)
T0 = datetime(2025, 3, 1, tzinfo=UTC)
STAFF_CARD = "5afe0000" + "ab" * 12  # c-2's own membership
HONEST = "c0ffee00" + "cd" * 12
STRANGER = "0dd00000" + "ef" * 12  # a card no member holds
BADGE = "bad9e000" + "12" * 12  # c-1's badge, swiped as a loyalty card
AUTH = ("alice", "correct horse battery")
FRAUD = {"card_points_day": {"limit": 500}, "refund_rate": {"limit": 2, "minutes": 60},
         "override_rate": {"limit": 3, "minutes": 60}}


def publish(engine: sa.Engine, *, fraud: dict[str, Any] | None = None, timezone: str = "Europe/Paris") -> None:
    draft = {"currency": "EUR", "timezone": timezone, "fraud": FRAUD if fraud is None else fraud,
             "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}]}
    with engine.begin() as conn:
        publish_draft(conn, draft, Ed25519PrivateKey.generate(), at=T0)


def activity(site: str, till: str, cashier: str, card: str = "", *, day: date = DAY, **figures: int) -> dict[str, Any]:
    columns = ("sales", "points_earned", "points_held", "points_redeemed", "refunds", "refunded", "overrides",
               "flagged")
    return {"day": day, "site_id": site, "till_id": till, "cashier_id": cashier, "card_token": card,
            **{name: figures.get(name, 0) for name in columns}}


DAY_ROWS = [
    activity("lyon", "t1", "c-2", STAFF_CARD, sales=8, points_earned=400, points_held=101, flagged=3),
    activity("lyon", "t1", "c-1", HONEST, sales=2, points_earned=500, points_redeemed=200),
    activity("paris", "t1", "c-3", HONEST, sales=1, points_earned=300),  # another site: its own limit
    activity("lyon", "t2", "c-1", STRANGER, sales=3, points_earned=499),
    activity("lyon", "t2", "c-1", BADGE, sales=1, points_earned=10),
    activity("lyon", "t1", "c-2", sales=20, refunds=3, refunded=4500, overrides=3),
    activity("lyon", "t2", "c-1", sales=10, refunds=2, refunded=900, overrides=4, flagged=1),
    activity("lyon", "t1", "c-2", STAFF_CARD, day=DAY - timedelta(days=1), sales=99, points_earned=9999),
]


@pytest.fixture
def chain(engine: sa.Engine) -> sa.Engine:
    """A bundle with fraud limits (Paris time), two members, staff c-1 (a badge) and c-2 (their own card)."""
    publish(engine)
    with engine.begin() as conn:
        for member_id, token in (("m-staff", STAFF_CARD), ("m-honest", HONEST)):
            conn.execute(members.insert().values(member_id=member_id, programme="default", status="active",
                                                 created_at=T0, updated_at=T0))
            conn.execute(member_cards.insert().values(card_token=token, member_id=member_id, state="active",
                                                      label="em4100:******0001", added_at=T0, state_at=T0))
        for staff_id, own in (("c-1", None), ("c-2", "m-staff"), ("c-3", None)):
            conn.execute(staff.insert().values(staff_id=staff_id, role="cashier", status="active", sites=[],
                                               member_id=own, created_at=T0, updated_at=T0))
        conn.execute(staff_badges.insert().values(card_token=BADGE, staff_id="c-1", label="badge", added_at=T0))
        conn.execute(staff_activity.insert(), DAY_ROWS)
    return engine


def report_of(engine: sa.Engine, **where: Any) -> Any:
    with engine.connect() as conn:
        return daily_report(conn, day=where.pop("day", DAY), now=datetime.now(UTC), **where)


def test_the_report_figures_per_card_cashier_and_till(chain: sa.Engine) -> None:
    report = report_of(chain)
    assert (report.day, report.timezone, report.limits.card_points_day) == (DAY, "Europe/Paris", 500)
    cards = {card.card_token: card for card in report.cards}
    assert [card.card_token for card in report.cards] == [HONEST, STAFF_CARD, STRANGER, BADGE]  # most points first
    own = cards[STAFF_CARD]
    assert (own.card, own.member_id, own.staff_id, own.owner_rang_up) == ("5afe0000…", "m-staff", "c-2", True)
    assert (own.sales, own.points_earned, own.points_held, own.flagged, own.over_limit, own.over_sites) == (
        8, 400, 101, 3, True, ["lyon"])
    honest = cards[HONEST]
    assert (honest.member_id, honest.staff_id, honest.sites, honest.tills, honest.cashiers) == (
        "m-honest", None, ["lyon", "paris"], ["lyon/t1", "paris/t1"], ["c-1", "c-3"])
    # 800 points across two sites, 500 at the most at one: the limit is per site, as the box applies it.
    assert (honest.points_earned, honest.points_redeemed, honest.over_limit) == (800, 200, False)
    assert (cards[STRANGER].member_id, cards[STRANGER].over_limit) == (None, False)
    assert (cards[BADGE].staff_id, cards[BADGE].owner_rang_up) == ("c-1", True)

    cashiers = {(line.site_id, line.cashier_id): line for line in report.cashiers}
    assert list(cashiers) == [("lyon", "c-1"), ("lyon", "c-2"), ("paris", "c-3")]
    c2 = cashiers[("lyon", "c-2")]
    assert (c2.sales, c2.sales_with_card, c2.points_to_cards, c2.points_held, c2.refunds, c2.refunded,
            c2.overrides, c2.flagged) == (28, 8, 400, 101, 3, 4500, 3, 3)
    assert (c2.refunds_over_limit, c2.overrides_over_limit) == (True, False)  # 3 > 2; 3 at the limit
    c1 = cashiers[("lyon", "c-1")]
    assert (c1.sales, c1.sales_with_card, c1.points_to_cards, c1.points_redeemed) == (16, 6, 1009, 200)
    assert (c1.refunds_over_limit, c1.overrides_over_limit) == (False, True)  # 2 at the limit; 4 > 3

    tills = {(line.site_id, line.till_id): line for line in report.tills}
    assert list(tills) == [("lyon", "t1"), ("lyon", "t2"), ("paris", "t1")]
    t1 = tills[("lyon", "t1")]
    assert (t1.sales, t1.sales_with_card, t1.points_to_cards, t1.refunds, t1.cashiers) == (30, 10, 900, 3,
                                                                                           ["c-1", "c-2"])
    assert (tills[("lyon", "t2")].overrides, tills[("paris", "t1")].sales) == (4, 1)


def test_one_site_only(chain: sa.Engine) -> None:
    report = report_of(chain, site_id="paris")
    assert [(card.card_token, card.points_earned) for card in report.cards] == [(HONEST, 300)]
    assert [line.cashier_id for line in report.cashiers] == ["c-3"]


@pytest.mark.parametrize(("earned", "held", "over"), [
    (499, 0, False), (500, 0, False), (501, 0, True),  # below, at, above the limit
    (400, 100, False), (400, 101, True),  # points held for a supervisor count: the card tried to earn them
])
def test_a_card_is_over_the_daily_limit_only_above_it(engine: sa.Engine, earned: int, held: int, over: bool) -> None:
    publish(engine)
    with engine.begin() as conn:
        conn.execute(staff_activity.insert(), [activity("lyon", "t1", "c-1", HONEST, sales=1, points_earned=earned,
                                                        points_held=held)])
    [card] = report_of(engine).cards
    assert card.over_limit is over


@pytest.mark.parametrize(("count", "over"), [(1, False), (2, False), (3, True)])
def test_refunds_and_overrides_against_their_limits(engine: sa.Engine, count: int, over: bool) -> None:
    publish(engine, fraud={"refund_rate": {"limit": 2, "minutes": 60}, "override_rate": {"limit": 2, "minutes": 30}})
    with engine.begin() as conn:
        conn.execute(staff_activity.insert(), [activity("lyon", "t1", "c-1", sales=5, refunds=count,
                                                        overrides=count)])
    [line] = report_of(engine).cashiers
    assert (line.refunds_over_limit, line.overrides_over_limit) == (over, over)


def test_without_limits_nothing_is_over(engine: sa.Engine) -> None:
    publish(engine, fraud={})
    with engine.begin() as conn:
        conn.execute(staff_activity.insert(), [activity("lyon", "t1", "c-1", HONEST, sales=1, points_earned=10**6,
                                                        refunds=50, overrides=50)])
    report = report_of(engine)
    assert report.limits.card_points_day is None and not report.cards[0].over_limit
    assert not report.cashiers[0].refunds_over_limit and not report.cashiers[0].overrides_over_limit


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_has_one_section_column_and_masked_cards(chain: sa.Engine) -> None:
    text = report_csv(report_of(chain))
    assert STAFF_CARD not in text and HONEST not in text  # tokens only as their first 8 characters
    rows = read_csv(text)
    assert [row["section"] for row in rows] == ["card"] * 4 + ["cashier"] * 3 + ["till"] * 3
    own = next(row for row in rows if row["card"] == "5afe0000…")
    assert {key: own[key] for key in ("site", "till", "cashier", "member_id", "staff_id", "owner_rang_up",
                                      "points_earned", "points_held", "points_limit", "over_points_limit")} == {
        "site": "lyon", "till": "lyon/t1", "cashier": "c-2", "member_id": "m-staff", "staff_id": "c-2",
        "owner_rang_up": "yes", "points_earned": "400", "points_held": "101", "points_limit": "500",
        "over_points_limit": "yes"}
    c2 = next(row for row in rows if row["section"] == "cashier" and row["cashier"] == "c-2")
    assert (c2["refunds"], c2["refunded"], c2["refund_limit"], c2["over_refund_limit"], c2["override_limit"],
            c2["over_override_limit"]) == ("3", "4500", "2/60min", "yes", "3/60min", "no")


@pytest.mark.parametrize(("value", "shown"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+1", "'+1+1"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("till-2", "till-2"), (-5, -5), ("", ""),
])
def test_formula_cells_are_neutralised(value: object, shown: object) -> None:
    assert safe_cell(value) == shown


def test_a_formula_in_the_data_never_reaches_the_csv_as_one(engine: sa.Engine) -> None:
    publish(engine)
    with engine.begin() as conn:  # the rollup keeps what boxes said: ids are checked there, not trusted here
        conn.execute(staff_activity.insert(), [activity("@lyon", "+t1", "=cmd|' /C calc'!A0", sales=1)])
    rows = read_csv(report_csv(report_of(engine)))
    assert {(row["section"], row["site"], row["till"], row["cashier"]) for row in rows} == {
        ("cashier", "'@lyon", "", "'=cmd|' /C calc'!A0"), ("till", "'@lyon", "'+t1", "'=cmd|' /C calc'!A0")}


@pytest.fixture
def client(chain: sa.Engine, db_url: str) -> Iterator[TestClient]:
    app = create_app(HubSettings(database_url=db_url), start_ingest=False)
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(conn, username=AUTH[0], password_hash=hash_password(AUTH[1]), role="analyst", created_at=T0)
        yield client


def test_the_api_gives_json_and_csv(client: TestClient) -> None:
    answer = client.get("/api/v1/reports/fraud-daily", params={"day": DAY.isoformat()}, auth=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["day"] == "2025-03-14" and body["limits"]["card_points_day"] == 500
    assert "per day" in body["limits"]["note"]
    assert [card["card"] for card in body["cards"] if card["over_limit"]] == ["5afe0000…"]
    answer = client.get("/api/v1/reports/fraud-daily", params={"day": "2025-03-14", "site": "lyon", "format": "csv"},
                        auth=AUTH)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="fraud-daily-2025-03-14-lyon.csv"'
    rows = read_csv(answer.content.decode("utf-8-sig"))
    assert {row["site"] for row in rows} == {"lyon"} and len(rows) == 4 + 2 + 2
    # The CSV is an export: in the HQ audit log (the JSON view is not).
    assert hq_actions(client.app.state.engine, "export.") == [  # type: ignore[attr-defined]
        ("export.fraud_daily", "2025-03-14", AUTH[0])]


@pytest.mark.parametrize("params", [
    {"day": "2025-13-45"}, {"day": "yesterday"}, {"day": DAY.isoformat(), "format": "xls"},
    {"day": DAY.isoformat(), "site": "=1+1"}])
def test_the_api_refuses_a_bad_request_without_echoing_it(client: TestClient, params: dict[str, str]) -> None:
    answer = client.get("/api/v1/reports/fraud-daily", params=params, auth=AUTH)
    assert answer.status_code == 422
    for value in params.values():
        if value != DAY.isoformat():
            assert value not in answer.text


def test_the_api_needs_a_login(client: TestClient) -> None:
    assert client.get("/api/v1/reports/fraud-daily").status_code == 401


def test_the_morning_mail_reaches_the_smtp_server_once_a_day_with_the_csv(
        chain: sa.Engine, db_url: str, tmp_path: Path) -> None:
    at = [datetime(2025, 3, 15, 4, 59, tzinfo=UTC)]  # 05:59 in Paris
    with SmtpServer(tmp_path / "smtp") as smtp:
        settings = load_settings(database_url=db_url, report_channels={"owner": smtp.url(to="owner@example.com")},
                                 report_hour=6)
        courier = Courier(chain, settings, now=lambda: at[0])
        courier.tick()  # before the hour: nothing (a send is synchronous: the server has it when tick returns)
        assert smtp.messages() == []
        at[0] = datetime(2025, 3, 15, 5, 0, tzinfo=UTC)  # 06:00 in Paris
        courier.tick()
        [mail] = smtp.wait_for_messages(1)
        at[0] = datetime(2025, 3, 15, 9, 0, tzinfo=UTC)
        courier.tick()  # later the same day: not again
        restarted = Courier(chain, settings, now=lambda: at[0])
        restarted.tick()  # nor by a hub restarted that day, or a second hub process: the database remembers
        assert len(smtp.messages()) == 1
        at[0] = datetime(2025, 3, 16, 5, 30, tzinfo=UTC)
        courier.tick()  # the next morning: the report of the 15th
        second = smtp.wait_for_messages(2)[1]
    assert mail["To"] == "owner@example.com"
    assert mail["Subject"] == "[Marquee] Fraud report 2025-03-14: 1 card(s) over the daily limit"
    text = body_text(mail)
    assert "- 5afe0000… member m-staff, staff c-2 (rang up own card): 400 earned, 101 held" in text
    assert "cashiers c-2" in text and STAFF_CARD not in text
    assert "- c-2 at lyon: 3 refunds, 3 overrides" in text
    files = attachments(mail)
    assert list(files) == ["fraud-daily-2025-03-14.csv"]
    rows = read_csv(files["fraud-daily-2025-03-14.csv"].decode("utf-8-sig"))
    assert len(rows) == 10 and rows[1]["card"] == "5afe0000…" and rows[1]["over_points_limit"] == "yes"
    assert list(attachments(second)) == ["fraud-daily-2025-03-15.csv"]
    assert "No card earned more than 500 points at one site." in body_text(second)
