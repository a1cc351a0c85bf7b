"""GET /api/v1/reports/periodic/{period}: JSON, CSV and XLSX through a real app and database; scoping; audit."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime

import openpyxl
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.access_tables import hq_audit
from cloud.db.users import add_user
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from tests.unit.hub.factories import T0, Chain
from tests.unit.hub.report_seed import RECEIVED, rollup_sums, sale, seed_chain

ADMIN = ("alice", "correct horse battery")
MANAGER = ("sam", "site manager password")
PATH = "/api/v1/reports/periodic"
FORMULA = '=HYPERLINK("http://evil.example","Dune")'


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(ADMIN[1])


@pytest.fixture(scope="module")
def manager_hash() -> str:
    return hash_password(MANAGER[1])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, password_hash: str, manager_hash: str) -> Iterator[TestClient]:
    """The seeded chain behind an app over SQLite, with an admin and site-a's manager; a second box of site-a
    sold a film whose title is a formula (1 ticket at 1.00 on 1 November), and refunded 0.60 of it the next day."""
    path = tmp_path_factory.mktemp("reports") / "hub.db"
    app = create_app(HubSettings(database_url=f"sqlite:///{path}"), start_ingest=False)
    with TestClient(app) as client:
        engine: sa.Engine = app.state.engine
        seed_chain(engine)
        chain = Chain("site-a", "box-c")
        chain.register(engine)
        chain.add(sale("site-a", "c-1", film=FORMULA, hall="1", showtime=RECEIVED, tickets=1, price=100),
                  occurred_at=datetime(2024, 11, 1, tzinfo=UTC))
        chain.add({"site_id": "site-a", "till_id": "till-1", "cashier_id": "c-7", "kind": "refund",
                   "refund_id": "r-1", "sale_id": "c-1", "original_till_id": "till-1", "original_seq": 1,
                   "amount": 60}, type="sale.refunded", occurred_at=datetime(2024, 11, 2, 12, tzinfo=UTC))
        with engine.begin() as conn:
            ingest_batch(conn, batch=chain.batch(1, 2), site_id="site-a", received_at=RECEIVED)
            add_user(conn, username=ADMIN[0], password_hash=password_hash, role="admin", created_at=T0)
            add_user(conn, username=MANAGER[0], password_hash=manager_hash, role="site_manager", created_at=T0,
                     sites=["site-a"])
        yield client


def _engine(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def _totals(sheet: object) -> list[tuple[object, ...]]:
    return [row for row in sheet.iter_rows(values_only=True) if row and str(row[0]).startswith("Total")]  # type: ignore[attr-defined]


def test_the_xlsx_totals_equal_the_json_and_the_rollup(client: TestClient) -> None:
    report = client.get(f"{PATH}/2024-11", auth=ADMIN).json()
    response = client.get(f"{PATH}/2024-11", params={"format": "xlsx"}, auth=ADMIN)

    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="marquee-month-2024-11.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Summary", "Box office by site", "Box office by film", "Occupancy by site",
                               "Occupancy by hall", "Concessions by site", "Refunds by site", "Members by site",
                               "Loyalty liability",
                               "Complaints"]
    (json_box,) = report["box_office"]["totals"]
    with _engine(client).connect() as conn:
        by_hand = rollup_sums(conn, first=date(2024, 11, 1), last=date(2024, 11, 30))
    ((_, currency, tickets, revenue, sales, _),) = _totals(book["Box office by site"])
    assert (currency, tickets, sales) == ("EUR", json_box["tickets"], json_box["sales"])
    assert round(revenue * 100) == json_box["ticket_revenue"] == by_hand["ticket_revenue"] == 13500
    assert (tickets, sales) == (by_hand["tickets"], by_hand["sales"])
    ((_, _, bar, items, *_),) = _totals(book["Concessions by site"])
    assert round(bar * 100) == report["concessions"]["totals"][0]["concession_revenue"] == by_hand["concession_revenue"]
    assert items == by_hand["concession_items"]
    ((_, _, refunds, refunded, gross, net, _),) = _totals(book["Refunds by site"])
    (json_refunds,) = report["refunds"]["totals"]
    assert (refunds, round(refunded * 100)) == (json_refunds["refunds"], json_refunds["refunded"]) == (1, 60)
    assert round(gross * 100) == json_refunds["gross_revenue"] == by_hand["ticket_revenue"] + bar * 100
    assert round(net * 100) == json_refunds["net_revenue"] == json_refunds["gross_revenue"] - 60
    assert [(line["site_id"], line["refunded"]) for line in report["refunds"]["by_site"]] == [
        ("site-a", 60), ("site-b", 0)]
    (seats,) = _totals(book["Occupancy by site"])
    assert seats[1:] == (3, 13, 2, 12, 150, pytest.approx(report["occupancy"]["totals"]["occupancy"]))
    # Numbers, not text: money with two decimals, rates as percentages.
    sheet = book["Box office by site"]
    money = next(cell for row in sheet.iter_rows() for cell in row if cell.value == revenue)
    assert (money.data_type, money.number_format) == ("n", "#,##0.00 [$EUR]")
    summary = {row[0]: row for row in book["Summary"].iter_rows(values_only=True) if row and row[0]}
    assert summary["Tickets"][1:4] == ("EUR", 14, 1)
    assert summary["Loyalty liability"][2] == report["liability"]["value"] / 100


def test_the_csv_is_one_file_of_sections_safe_in_a_spreadsheet(client: TestClient) -> None:
    response = client.get(f"{PATH}/2024-11", params={"format": "csv"}, auth=ADMIN)

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the file as UTF-8
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    titles = [row[0] for row in rows if len(row) == 1 and row[0][:1].isupper()]
    assert titles[:4] == ["Marquee report 2024-11", "Box office by site", "Box office by film (most ticket "
                          "revenue first)", "Occupancy by site"]
    films = [row[0] for row in rows if row and "HYPERLINK" in row[0]]
    assert films == ["'" + FORMULA]
    assert ["Total", "EUR", "14", "135.00", "7", "9.64"] in rows
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"{PATH}/2024-11", params={"format": "xlsx"},
                                                        auth=ADMIN).content))
    cells = [cell for row in book["Box office by film"].iter_rows() for cell in row
             if isinstance(cell.value, str) and "HYPERLINK" in cell.value]
    assert [(cell.value[:2], cell.data_type) for cell in cells] == [("'=", "s")]


def test_a_site_manager_gets_their_sites_only(client: TestClient) -> None:
    assert client.get(f"{PATH}/2024-11", params={"site": "site-b"}, auth=MANAGER).status_code == 403
    assert client.get(f"{PATH}/2024-11", params={"site": "site-b", "format": "xlsx"},
                      auth=MANAGER).status_code == 403

    mine = client.get(f"{PATH}/2024-11", auth=MANAGER).json()

    assert mine["sites"] == ["site-a"] and mine["liability"] is None
    assert [line["site_id"] for line in mine["box_office"]["by_site"]] == ["site-a"]
    assert mine["members"]["new_enrolments"] is None
    one = client.get(f"{PATH}/2024-11", params={"site": "site-a"}, auth=MANAGER).json()
    assert one["timezone"] == "Europe/Paris" and one["box_office"]["totals"] == mine["box_office"]["totals"]


def test_every_download_is_audited(client: TestClient) -> None:
    client.get(f"{PATH}/2024-Q4", params={"format": "csv", "site": "site-a"}, auth=ADMIN)
    client.get(f"{PATH}/2024", auth=MANAGER)

    with _engine(client).connect() as conn:
        rows = conn.execute(sa.select(hq_audit).where(hq_audit.c.action == "report.download",
                                                      hq_audit.c.target.in_(["quarter 2024-Q4", "year 2024"]))
                            .order_by(hq_audit.c.id)).all()
    assert [(row.username, row.target, row.site_id, row.detail["format"]) for row in rows] == [
        ("alice", "quarter 2024-Q4", "site-a", "csv"), ("sam", "year 2024", None, "json")]
    assert rows[1].detail["sites"] == ["site-a"]


def test_bad_input_is_a_clear_422(client: TestClient) -> None:
    for period, params in [("2024-13", {}), ("2024-Q5", {}), ("1999", {}), ("2024-11", {"format": "pdf"}),
                           ("2024-11", {"site": "Not A Site"}), ("2024-11", {"site": "x" * 65})]:
        response = client.get(f"{PATH}/{period}", params=params, auth=ADMIN)

        assert response.status_code == 422, (period, params)
        assert all(set(error) == {"loc", "msg", "type"} for error in response.json()["detail"])
