"""The dashboard's live feed (GET /api/v1/live, Server-Sent Events) through a real uvicorn server, a real SQLite
database and real ingest: one poller for every stream, scoping, heartbeats, a new sale pushed within seconds."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa

from cloud.analytics.box_office import SiteToday
from cloud.api.app import create_app
from cloud.ingest.store import ingest_batch
from cloud.web.live import LiveFeed
from tests.support.app_server import AppServer
from tests.support.hub_users import PASSWORD, hub_settings, make_user
from tests.support.waiting import wait_for
from tests.unit.hub.factories import Chain

ADMIN = ("ada", PASSWORD)
MANAGER = ("sam", PASSWORD)
POLL_S = 0.1
MAX_STREAMS = 5


class Stream:
    """A client of one event stream, read on a thread: `events` holds (kind, data) as they arrive, kind being
    the event's name, "comment" or "retry"."""

    def __init__(self, url: str, *, auth: tuple[str, str], params: dict[str, str] | None = None) -> None:
        self.events: list[tuple[str, str]] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self._socket: socket.socket | None = None
        self._client = httpx.Client(auth=auth, timeout=httpx.Timeout(10, read=30))
        self._thread = threading.Thread(target=self._read, args=(url, params), daemon=True)
        self._thread.start()
        wait_for(lambda: self.status is not None, timeout=10, what="the stream's answer")

    def _read(self, url: str, params: dict[str, str] | None) -> None:
        try:
            with self._client.stream("GET", url, params=params) as response:
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self.headers = response.headers
                self.status = response.status_code
                kind, data = "message", []
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.events.append(("comment", line[1:].strip()))
                    elif line.startswith("retry:"):
                        self.events.append(("retry", line[6:].strip()))
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        self.events.append((kind, "\n".join(data)))
                        kind, data = "message", []
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            if self.status is None:
                self.status = -1

    def sales(self) -> list[dict[str, Any]]:
        """Every `sales` event so far, decoded."""
        return [json.loads(data) for kind, data in list(self.events) if kind == "sales"]

    def close(self) -> None:
        """Hang up (the server sees the connection go) and wait for the reader."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._client.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, sa.Engine, Any]]:
    """A served app over a fresh SQLite file with an admin and a site manager of site-a; (base URL, engine, app)."""
    path: Path = tmp_path_factory.mktemp("live") / "hub.db"
    settings = hub_settings(f"sqlite:///{path}", live_poll_s=POLL_S, live_heartbeat_s=0.5,
                            live_max_streams=MAX_STREAMS)
    app = create_app(settings, start_ingest=False)
    with AppServer(app) as server:
        engine: sa.Engine = app.state.engine
        make_user(engine, ADMIN[0], "admin")
        make_user(engine, MANAGER[0], "site_manager", sites=("site-a",))
        a, b = Chain("site-a", "box-a"), Chain("site-b", "box-b")
        a.register(engine)
        b.register(engine)
        app.state.chains = {"site-a": a, "site-b": b}
        yield server.url, engine, app


def sell(app: Any, site: str, *, tickets: int) -> None:
    """Ingest one sale made now at `site` (its box's next event), as the ingest worker stores a batch."""
    chain: Chain = app.state.chains[site]
    chain.add(occurred_at=datetime.now(UTC), tickets=tickets, ticket_price=1000, concession=300)
    seq = len(chain.events)
    with app.state.engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(seq, seq), site_id=site, received_at=datetime.now(UTC))


def tickets_of(message: dict[str, Any], site: str) -> int:
    return sum(row["tickets"] for row in message["sites"] if row["site_id"] == site)


def test_a_sale_ingested_is_pushed_to_the_open_stream_within_seconds(hub: tuple[str, sa.Engine, Any]) -> None:
    url, _, app = hub
    stream = Stream(f"{url}/api/v1/live", auth=ADMIN)
    try:
        assert stream.status == 200 and stream.headers is not None
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        first = wait_for(stream.sales, timeout=5, what="the first figures")[0]
        before = tickets_of(first, "site-a")
        assert stream.events[0] == ("retry", "1000")

        sell(app, "site-a", tickets=3)

        pushed = wait_for(lambda: [m for m in stream.sales() if tickets_of(m, "site-a") == before + 3], timeout=5,
                          what="the sale on the stream")[0]
        row = next(row for row in pushed["sites"] if row["site_id"] == "site-a")
        assert (row["currency"], row["day"]) == ("EUR", row["day"]) and row["ticket_revenue"] >= 3000
        change = pushed["changes"][0]
        assert (change["site_id"], change["tickets"], change["ticket_revenue"], change["concession_revenue"],
                change["sales"]) == ("site-a", 3, 3000, 300, 1)
    finally:
        stream.close()


def test_one_poller_feeds_every_stream_and_a_process_caps_its_streams(hub: tuple[str, sa.Engine, Any]) -> None:
    url, _, app = hub
    streams = [Stream(f"{url}/api/v1/live", auth=ADMIN) for _ in range(MAX_STREAMS)]
    try:
        assert [s.status for s in streams] == [200] * MAX_STREAMS
        refused = httpx.get(f"{url}/api/v1/live", auth=ADMIN, timeout=10)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"

        feed: LiveFeed = app.state.live
        reads, started = feed.reads, datetime.now(UTC)
        sell(app, "site-b", tickets=2)
        for stream in streams:
            wait_for(lambda s=stream: any(m["changes"] and m["changes"][0]["site_id"] == "site-b" and
                                          m["changes"][0]["tickets"] == 2 for m in s.sales()),
                     timeout=5, what="the sale on every stream")
        elapsed = (datetime.now(UTC) - started).total_seconds()
        # One read per poll whatever the number of streams (five streams reading alone would be five times more).
        assert feed.reads - reads <= elapsed / POLL_S + 2
        assert feed.streams == MAX_STREAMS
    finally:
        for stream in streams:
            stream.close()
    wait_for(lambda: app.state.live.streams == 0, timeout=5, what="closed streams to be forgotten")


def test_a_site_manager_streams_their_sites_only(hub: tuple[str, sa.Engine, Any]) -> None:
    url, _, app = hub
    other = httpx.get(f"{url}/api/v1/live", params={"site": "site-b"}, auth=MANAGER, timeout=10)
    assert other.status_code == 403
    assert httpx.get(f"{url}/api/v1/live", params={"site": "Not An Id"}, auth=ADMIN, timeout=10).status_code == 422

    mine = Stream(f"{url}/api/v1/live", auth=MANAGER)
    only_b = Stream(f"{url}/api/v1/live", auth=ADMIN, params={"site": "site-b"})
    try:
        wait_for(lambda: mine.sales() and only_b.sales(), timeout=5, what="the first figures")
        sell(app, "site-b", tickets=1)
        wait_for(lambda: any(m["changes"] and m["changes"][0]["tickets"] == 1 for m in only_b.sales()), timeout=5,
                 what="site-b's sale on the admin's site-b stream")
        sell(app, "site-a", tickets=4)
        wait_for(lambda: any(m["changes"] and m["changes"][0]["tickets"] == 4 for m in mine.sales()), timeout=5,
                 what="site-a's sale on the manager's stream")

        seen = {row["site_id"] for m in mine.sales() for row in m["sites"] + m["changes"]}
        assert seen == {"site-a"}
        assert {row["site_id"] for m in only_b.sales() for row in m["sites"] + m["changes"]} == {"site-b"}
    finally:
        mine.close()
        only_b.close()


def test_an_idle_stream_gets_heartbeats(hub: tuple[str, sa.Engine, Any]) -> None:
    url, _, _ = hub
    stream = Stream(f"{url}/api/v1/live", auth=ADMIN, params={"site": "site-a"})
    try:
        wait_for(lambda: stream.sales(), timeout=5, what="the first figures")
        # Nothing sells: within a few heartbeat periods, comment lines keep the connection alive.
        wait_for(lambda: [e for e in stream.events if e == ("comment", "keep-alive")][1:], timeout=5,
                 what="two heartbeats")
    finally:
        stream.close()


def test_the_feed_skips_midnight_and_a_pause_and_ends_each_stream_in_time() -> None:
    day = date(2026, 11, 23)
    reads: list[list[SiteToday]] = [
        [SiteToday("a", "A", day, "EUR", 10, 10000, 500, 6)],  # the first read: figures, no change
        [SiteToday("a", "A", day, "EUR", 12, 12000, 500, 7)],  # two tickets sold
        [SiteToday("a", "A", date(2026, 11, 24), "EUR", 1, 1000, 0, 1)],  # past midnight: a new day, no change
    ]

    def read() -> list[SiteToday]:
        return reads.pop(0) if len(reads) > 1 else reads[0]

    async def run() -> list[str]:
        feed = LiveFeed(read, poll_s=0.05, max_streams=10)
        return [chunk async for chunk in feed.stream(None, heartbeat_s=0.1, max_s=0.6)]

    chunks = anyio.run(run)
    events = [json.loads(c.split("data: ", 1)[1]) for c in chunks if c.startswith("event: sales")]
    assert chunks[0] == "retry: 1000\n\n" and ": keep-alive\n\n" in chunks
    assert [m["sites"][0]["tickets"] for m in events] == [10, 12, 1]
    assert [[(c["tickets"], c["ticket_revenue"], c["sales"]) for c in m["changes"]] for m in events] == [
        [], [(2, 2000, 1)], [(2, 2000, 1)]]


def test_the_feed_rides_out_a_database_outage_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    day = date(2026, 11, 23)
    answers: list[Exception | list[SiteToday]] = [[SiteToday("a", "A", day, "EUR", 1, 1000, 0, 1)],
                                                  *[sa.exc.OperationalError("SELECT", {}, Exception("gone"))] * 3,
                                                  [SiteToday("a", "A", day, "EUR", 3, 3000, 0, 2)]]

    def read() -> list[SiteToday]:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def run() -> list[str]:
        feed = LiveFeed(read, poll_s=0.05, max_streams=10)
        return [chunk async for chunk in feed.stream(None, heartbeat_s=5, max_s=0.5)]

    with caplog.at_level(logging.INFO, logger="cloud.web.live"):
        chunks = anyio.run(run)
    events = [json.loads(c.split("data: ", 1)[1]) for c in chunks if c.startswith("event: sales")]
    assert [m["sites"][0]["tickets"] for m in events] == [1, 3]  # the last figures stay until the next read
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", "live feed"), ("INFO", "live feed")]
