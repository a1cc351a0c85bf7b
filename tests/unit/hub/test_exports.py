"""GET /api/v1/exports/transactions: rows, filters, scoping, audit, streaming, bounded memory, the concurrency cap."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.access_tables import hq_audit
from cloud.db.schema import member_cards
from cloud.db.users import add_user
from cloud.reports.export import ExportQuery, export_pages, plan_scan
from cloud.reports.export_files import export_chunks
from cloud.settings import HubSettings
from tests.unit.hub.factories import T0, Chain
from tests.unit.hub.report_seed import CARD_X, insert_sales, seed_chain

ADMIN = ("alice", "correct horse battery")
MANAGER = ("sam", "site manager password")
PATH = "/api/v1/exports/transactions"
NOVEMBER = {"from": "2024-11-01", "to": "2024-11-30"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The seeded chain behind an app over SQLite (one export at a time), with an admin and site-a's manager."""
    path = tmp_path_factory.mktemp("exports") / "hub.db"
    app = create_app(HubSettings(database_url=f"sqlite:///{path}", export_max_concurrent=1), start_ingest=False)
    with TestClient(app) as client:
        engine: sa.Engine = app.state.engine
        seed_chain(engine)
        with engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
            add_user(conn, username=MANAGER[0], password_hash=hash_password(MANAGER[1]), role="site_manager",
                     created_at=T0, sites=["site-a"])
        yield client


def _engine(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def _rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_one_row_per_sale_of_each_sites_local_days(client: TestClient) -> None:
    response = client.get(PATH, params=NOVEMBER, auth=ADMIN)

    rows = _rows(response)
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert response.headers["content-disposition"] == \
        'attachment; filename="marquee-transactions-2024-11-01-2024-11-30.csv"'
    assert (response.headers["x-marquee-rows-estimate"], response.headers["x-marquee-rows-estimate-kind"]) == (
        "6", "exact")
    # site-a's sale at 23:30 UTC on 30 November is 1 December in Paris: not November's.
    assert [row["sale_id"] for row in rows] == ["a-1", "a-2", "a-3", "a-4", "b-2", "b-3"]
    with _engine(client).connect() as conn:
        member_x = conn.execute(sa.select(member_cards.c.member_id)
                                .where(member_cards.c.card_token == CARD_X)).scalar_one()
    assert rows[0] == {
        "local_time": "2024-11-10T19:00:00+01:00", "site": "site-a", "till": "till-1", "cashier": "c-7",
        "sale_id": "a-1", "films": "Dune", "tickets": "2", "ticket_revenue": "24.00", "concessions": "4.50",
        "total": "28.50", "currency": "EUR", "card": CARD_X[:8] + "…", "member_id": member_x,
        "points_earned": "10", "points_redeemed": "0", "fraud_action": "", "device_id": "box-a", "seq": "1"}
    assert (rows[3]["card"], rows[3]["member_id"], rows[4]["local_time"]) == ("", "", "2024-11-12T19:00:00+00:00")
    assert CARD_X not in response.text  # never a whole card token


def test_filters(client: TestClient) -> None:
    with _engine(client).connect() as conn:
        member_x = conn.execute(sa.select(member_cards.c.member_id)
                                .where(member_cards.c.card_token == CARD_X)).scalar_one()

    def sale_ids(**params: str) -> list[str]:
        return [row["sale_id"] for row in _rows(client.get(PATH, params={**NOVEMBER, **params}, auth=ADMIN))]

    assert sale_ids(site="site-b") == ["b-2", "b-3"]
    assert sale_ids(film="dune") == ["a-1", "a-2", "a-3"]
    assert sale_ids(member=member_x) == ["a-1", "a-2", "a-3", "b-2"]
    assert sale_ids(cashier="c-7", till="till-1", site="site-a") == ["a-1", "a-2", "a-3", "a-4"]
    assert sale_ids(till="till-2") == []
    assert sale_ids(**{"from": "2024-12-01", "to": "2024-12-31", "site": "site-a"}) == ["a-5", "a-6"]
    narrowed = client.get(PATH, params={**NOVEMBER, "film": "Up"}, auth=ADMIN)
    assert narrowed.headers["x-marquee-rows-estimate-kind"] == "upper-bound"
    lines = client.get(PATH, params={**NOVEMBER, "format": "jsonl", "site": "site-b"}, auth=ADMIN)
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert [(row["sale_id"], row["ticket_revenue"], row["total"]) for row in map(json.loads, lines.text.splitlines())
            ] == [("b-2", 2700, 2900), ("b-3", 2700, 2900)]


def test_a_site_manager_exports_their_sites_only_and_every_export_is_audited(client: TestClient) -> None:
    assert client.get(PATH, params={**NOVEMBER, "site": "site-b"}, auth=MANAGER).status_code == 403

    rows = _rows(client.get(PATH, params={**NOVEMBER, "cashier": "c-7"}, auth=MANAGER))

    assert {row["site"] for row in rows} == {"site-a"} and len(rows) == 4
    with _engine(client).connect() as conn:
        audit = conn.execute(sa.select(hq_audit).where(hq_audit.c.action == "export.transactions",
                                                       hq_audit.c.username == "sam")).one()
    assert audit.target == "2024-11-01..2024-11-30" and audit.site_id is None
    assert audit.detail == {"from": "2024-11-01", "to": "2024-11-30", "sites": ["site-a"], "till": None,
                            "cashier": "c-7", "film": None, "member": None, "format": "csv", "expected_rows": 4}


def test_bad_input_is_a_clear_422(client: TestClient) -> None:
    for params in [{"from": "2024-11-30", "to": "2024-11-01"}, {"from": "1999-12-31", "to": "2024-11-01"},
                   {"from": "2024-11-01"}, {**NOVEMBER, "format": "xlsx"}, {"from": "2020-01-01", "to": "2024-01-01"},
                   {**NOVEMBER, "till": "Till 1"}, {**NOVEMBER, "cashier": "c\n7"}, {**NOVEMBER, "film": "x" * 121},
                   {"from": "2024-02-30", "to": "2024-03-01"},
                   {"from": "1730419200", "to": "2024-11-30"}]:  # a unix time is not a day
        response = client.get(PATH, params=params, auth=ADMIN)

        assert response.status_code == 422, params
        assert all(set(error) == {"loc", "msg", "type"} for error in response.json()["detail"]), params


def _call(client: TestClient, query: str, on_body: Any) -> list[dict[str, Any]]:
    """Run one request through the ASGI app by hand, calling `on_body(n)` as the n-th body chunk is sent: the
    point where a server hands bytes to the network before asking the app for more."""
    token = "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": PATH, "raw_path": PATH.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"authorization", token.encode())], "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80)}
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            if on_body(sum(1 for each in sent if each["type"] == "http.response.body")) is False:
                done.set()  # the client goes away

    async def run() -> None:
        await client.app(scope, receive, send)  # type: ignore[arg-type]
        done.set()

    asyncio.run(run())
    return sent


def test_the_export_streams_page_by_page_one_at_a_time(client: TestClient) -> None:
    engine = _engine(client)
    Chain("site-s", "box-s").register(engine)
    insert_sales(engine, site_id="site-s", device_id="box-s", count=2500, first_at=datetime(2024, 11, 1, tzinfo=UTC),
                 step=timedelta(minutes=10))
    query = "from=2024-11-01&to=2024-11-30&site=site-s"
    busy: list[int] = []

    def first_rows_out(chunk: int) -> None:
        if chunk == 2:  # the header went out, then the first page: the last page is not read yet
            insert_sales(engine, site_id="site-s", device_id="box-s", count=1, first_seq=2501,
                         first_at=datetime(2024, 11, 29, tzinfo=UTC), step=timedelta(0))
            busy.append(client.get(PATH, params={"from": "2024-11-01", "to": "2024-11-01"}, auth=ADMIN).status_code)

    sent = _call(client, query, first_rows_out)

    body = b"".join(message.get("body", b"") for message in sent).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 2501 and rows[-1]["sale_id"] == "v-2501"  # stored after the first rows were sent
    assert len([message for message in sent if message.get("body")]) == 4  # header + 3 pages of 1000
    assert busy == [429]  # one export at a time here; the slot is free again afterwards
    assert client.get(PATH, params=NOVEMBER, auth=ADMIN).status_code == 200
    # A client that goes away mid-stream gives its slot back too.
    _call(client, query, lambda chunk: chunk < 2)
    assert client.app.state.export_slots.taken == 0  # type: ignore[attr-defined]
    assert client.get(PATH, params=NOVEMBER, auth=ADMIN).status_code == 200


def test_a_full_house_is_told_when_to_come_back(client: TestClient) -> None:
    slots = client.app.state.export_slots  # type: ignore[attr-defined]
    assert slots.take()
    try:
        response = client.get(PATH, params=NOVEMBER, auth=ADMIN)
    finally:
        slots.give_back()

    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0


def test_memory_stays_bounded_whatever_the_rows(client: TestClient) -> None:
    engine = _engine(client)
    Chain("site-m", "box-m").register(engine)
    insert_sales(engine, site_id="site-m", device_id="box-m", count=2000, first_at=datetime(2024, 11, 1, tzinfo=UTC),
                 step=timedelta(minutes=15))

    def peak(last: date) -> tuple[int, int]:
        query = ExportQuery(first_day=date(2024, 11, 1), last_day=last, sites=frozenset({"site-m"}))
        with engine.connect() as conn:
            scan = plan_scan(conn, query=query)
        tracemalloc.start()
        try:
            lines = sum(chunk.count(b"\n") for chunk in
                        export_chunks(export_pages(engine, query=query, scan=scan, page_size=100), "csv"))
            return lines - 1, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, few_peak = peak(date(2024, 11, 4))
    many, many_peak = peak(date(2024, 11, 30))

    assert (few, many) == (384, 2000)
    # Five times the rows, the same memory: a page at a time (the whole export as rows would be several MB).
    assert many_peak < 1_500_000 and many_peak < few_peak * 1.3, (few_peak, many_peak)
