"""The public feedback page (/f/{site}/{code}) through a real app and a SQLite file: the form of a ticket sold at the
site, its headers and its five questions; one answer per code; another site's code, an unknown code and a closed
window refused with a clear page; bad input a 422 page; a script or quotes in a film's name or a comment staying
text; the comment never in clear in the database file; no comment kept without a member key; rate limits."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.db.feedback_tables import complaints, feedback_answers, nps_daily
from cloud.settings import HubSettings
from tests.support.feedback import MEMBER_KEY, sell
from tests.support.hub_users import bearer, make_token, make_user
from tests.unit.hub.factories import Chain

NOW = datetime.now(UTC)
BOXES = itertools.count(1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One hub for the module (each test sells its own tickets): comments sealed under a member key."""
    path = tmp_path_factory.mktemp("feedback") / "hub.db"
    app = create_app(HubSettings(database_url=f"sqlite:///{path}", member_key=MEMBER_KEY,
                                 feedback_client_limit=10_000), start_ingest=False)
    with TestClient(app) as client:
        yield client


def engine_of(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def ticket(client: TestClient, site_id: str = "riverside", *, hours_ago: float = 3, **sale: Any) -> str:
    """A ticket sold `hours_ago` for a show an hour later; its code."""
    chain = Chain(site_id, f"{site_id}-box-{next(BOXES)}")  # a box per ticket: each chain starts at 1
    chain.register(engine_of(client))
    sold = NOW - timedelta(hours=hours_ago)
    return sell(engine_of(client), chain, sold_at=sold, show_at=sold + timedelta(hours=1), **sale)


def stored(client: TestClient, code: str) -> list[Any]:
    with engine_of(client).connect() as conn:
        return list(conn.execute(sa.select(feedback_answers).where(feedback_answers.c.code == code)).all())


def test_the_form_of_a_ticket_sold_here_is_plain_html_with_strict_headers(hub: TestClient) -> None:
    code = ticket(hub, film="<script>alert('x')</script> \"Quotes\"", hall="h2")
    page = hub.get(f"/f/riverside/{code}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert (page.headers["x-frame-options"], page.headers["referrer-policy"]) == ("DENY", "no-referrer")
    assert "<script" not in page.text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "&#34;Quotes&#34;" in page.text
    assert len(re.findall(r"<legend>", page.text)) == 5  # at most five questions
    assert re.findall(r'(?:href|src)="([^"]+)"', page.text) == ["../feedback.css"]  # nothing from elsewhere
    assert 'name="comment"' in page.text and "kept encrypted" in page.text
    css = hub.get("/f/feedback.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert hub.get(f"/f/riverside/{code.lower()}").status_code == 200  # as typed from the ticket


def test_an_answer_is_taken_once_and_a_second_is_told_it_was_answered(hub: TestClient) -> None:
    code = ticket(hub)
    first = hub.post(f"/f/riverside/{code}", data={"nps": "9", "film": "5", "hall": "4", "staff": "3"})
    assert first.status_code == 200 and "Thank you" in first.text
    second = hub.post(f"/f/riverside/{code}", data={"nps": "0"})
    assert second.status_code == 409 and "answered already" in second.text
    assert hub.get(f"/f/riverside/{code}").status_code == 409
    [row] = stored(hub, code)
    assert (row.nps, row.film_score, row.hall_score, row.staff_score, row.film, row.hall) == (9, 5, 4, 3, "Dune", "h1")


def test_another_sites_code_and_unknown_codes_get_the_not_known_yet_page(hub: TestClient) -> None:
    code = ticket(hub, "downtown")
    for path in (f"/f/riverside/{code}", "/f/riverside/0000000000000000", "/f/riverside/not-a-code",
                 "/f/Not%20a%20site/" + code, "/f/riverside/" + "Z" * 300):
        assert hub.get(path).status_code == 404, path
        refused = hub.post(path, data={"nps": "10"})
        assert refused.status_code == 404 and "try again later" in refused.text, path
    assert stored(hub, code) == []


def test_after_the_window_the_form_is_closed(hub: TestClient) -> None:
    code = ticket(hub, hours_ago=15 * 24)  # the show was 15 days ago; the window is 14
    assert hub.get(f"/f/riverside/{code}").status_code == 410
    refused = hub.post(f"/f/riverside/{code}", data={"nps": "10"})
    assert refused.status_code == 410 and "closed" in refused.text
    assert stored(hub, code) == []


@pytest.mark.parametrize(("fields", "named"), [
    ({"nps": "11"}, "question 1"), ({}, "question 1"), ({"nps": "x"}, "question 1"),
    ({"nps": "5", "hall": "0"}, "question 3"), ({"nps": "5", "complaint": "refund-me"}, "subject"),
    ({"nps": "5", "comment": "x" * 2001}, "question 5"),
])
def test_bad_input_gets_a_page_naming_the_question_and_stores_nothing(hub: TestClient, fields: dict[str, str],
                                                                       named: str) -> None:
    code = ticket(hub)
    refused = hub.post(f"/f/riverside/{code}", data=fields)
    assert refused.status_code == 422 and named in refused.text and refused.headers["content-type"].startswith(
        "text/html")
    assert "x" * 50 not in refused.text and "refund-me" not in refused.text  # what was sent is not echoed
    assert stored(hub, code) == []


def test_a_body_larger_than_any_form_is_refused_unread(hub: TestClient) -> None:
    code = ticket(hub)
    refused = hub.post(f"/f/riverside/{code}", content=b"nps=5&comment=" + b"a" * 100_000,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 413 and stored(hub, code) == []


def test_a_body_of_more_fields_than_the_form_has_is_a_422_page_not_a_server_error(hub: TestClient) -> None:
    code = ticket(hub)
    refused = hub.post(f"/f/riverside/{code}", content=b"nps=5" + b"&x=1" * 60,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 422 and "more fields than it has" in refused.text
    assert stored(hub, code) == []


def test_a_comment_is_sealed_in_the_database_file_and_a_complaint_opened(hub: TestClient, tmp_path: Path) -> None:
    code = ticket(hub)
    comment = "<script>alert(\"x\")</script> Popcorn was cold. Call me: +33 6 12 34 56 78, jo.doe@example.org"
    answered = hub.post(f"/f/riverside/{code}", data={"nps": "6", "comment": comment, "complaint": "food_drink"})
    assert answered.status_code == 200 and "complaint" in answered.text and "<script" not in answered.text
    [row] = stored(hub, code)
    assert row.comment is not None and row.key_id is not None
    with engine_of(hub).connect() as conn:
        opened = conn.execute(sa.select(complaints).where(complaints.c.answer_id == row.id)).one()
    assert (opened.category, opened.state, opened.source, opened.site_id) == ("food_drink", "open", "form",
                                                                               "riverside")
    database = Path(engine_of(hub).url.database or "")
    raw = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    for secret in ("12 34 56 78", "jo.doe@example.org", "Popcorn was cold"):
        assert secret.encode() not in raw and secret.encode("utf-16-le") not in raw


def test_the_nps_rollup_counts_each_answer(hub: TestClient) -> None:
    codes = [ticket(hub, "downtown", film="Rollup Film") for _ in range(3)]
    for code, nps in zip(codes, (10, 7, 3), strict=True):
        assert hub.post(f"/f/downtown/{code}", data={"nps": str(nps), "film": "4"}).status_code == 200
    with engine_of(hub).connect() as conn:
        rows = conn.execute(sa.select(nps_daily).where(nps_daily.c.film == "Rollup Film")).all()
    sums = [sum(getattr(row, name) for row in rows) for name in ("answers", "promoters", "passives", "detractors",
                                                                 "film_sum", "film_count", "hall_count")]
    assert sums == [3, 1, 1, 1, 12, 3, 0]


def test_without_a_member_key_the_form_says_comments_are_not_kept_and_keeps_none(tmp_path: Path) -> None:
    settings = HubSettings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", member_key_file=tmp_path / "none.key")
    with TestClient(create_app(settings, start_ingest=False)) as client:
        code = ticket(client)
        page = client.get(f"/f/riverside/{code}")
        assert page.status_code == 200 and 'name="comment"' not in page.text and "cannot keep" in page.text
        assert client.post(f"/f/riverside/{code}", data={"nps": "8", "comment": "Call me on 0612345678"}
                           ).status_code == 200
        [row] = stored(client, code)
        assert (row.nps, row.comment, row.comment_key) == (8, None, None)


def test_requests_beyond_the_limits_get_429_with_retry_after(tmp_path: Path) -> None:
    settings = HubSettings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", feedback_client_limit=4,
                           feedback_site_limit=3, member_key=MEMBER_KEY)
    with TestClient(create_app(settings, start_ingest=False)) as client:
        code = ticket(client)
        assert [client.get(f"/f/riverside/{code}").status_code for _ in range(3)] == [200] * 3
        limited = client.post(f"/f/riverside/{code}", data={"nps": "10"})  # the site's limit
        assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 600
        assert "Too many requests" in limited.text and stored(client, code) == []
        assert client.get("/f/downtown/0000000000000000").status_code == 404  # another site: still served...
        assert client.get("/f/downtown/0000000000000000").status_code == 429  # ...until this address's limit


def test_a_flood_on_the_form_takes_its_own_connections_and_the_api_still_answers(hub: TestClient) -> None:
    code = ticket(hub)
    token = make_token(engine_of(hub), make_user(engine_of(hub), "pool-analyst", "analyst")[0])
    public: sa.Engine = hub.app.state.public_engine  # type: ignore[attr-defined]
    held = [public.connect() for _ in range(public.pool.size() + public.pool._max_overflow)]  # type: ignore[attr-defined]
    try:  # every connection of the page's pool taken, as by a flood of slow requests
        started = time.monotonic()
        busy = hub.get(f"/f/riverside/{code}")
        waited = time.monotonic() - started
        assert busy.status_code == 503 and "We are busy" in busy.text and busy.headers["retry-after"] == "60"
        assert waited < 10  # the pool's own 3 s, not the API's 10 s
        # The API's connections were never the page's (sharing them, it would answer 503 after its own 10 s).
        assert hub.get("/api/v1/feedback/nps", headers=bearer(token)).status_code == 200
    finally:
        for each in held:
            each.close()
    assert hub.get(f"/f/riverside/{code}").status_code == 200  # and the page is back
