"""Alert cases at the hub: a box's alert events become one case per key, counted once per event however often a
batch is delivered; people move cases through their states with who, when and a note."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cloud.db.fraud_tables import alert_history, alerts
from cloud.errors import AlertError
from cloud.fraud.cases import MAX_EVENTS, get_alert, list_alerts, raise_alert, transition
from cloud.ingest.store import ingest_batch
from tests.unit.hub.factories import T0, Chain

SITE, DEVICE = "riverside", "riverside-box1"
TOKEN = "ab" * 16
KEY = f"card_points_day:{TOKEN}:2025-03-14"


def alert_payload(*, key: str = KEY, code: str = "card_points_day", action: str = "hold",
                  severity: str = "warning", **extra: Any) -> dict[str, Any]:
    """An alert.raised payload as a box journals it."""
    return {"site_id": SITE, "key": key, "code": code, "severity": severity, "action": action,
            "first_at": "2025-03-14T18:00:00Z", "till_id": "till-1", "cashier_id": "c-7", "card_token": TOKEN,
            "sale_id": "s-1", "summary": "card abababab… earned 600 points today, limit 500",
            "figures": {"points": 600, "limit": 500}} | extra


def ingest(engine: sa.Engine, chain: Chain, first: int, last: int, *, hours: int = 1) -> None:
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(first, last), site_id=chain.site_id,
                     received_at=T0 + timedelta(hours=hours))


def cases(engine: sa.Engine, **filters: Any) -> list[Any]:
    with engine.connect() as conn:
        return [case.row for case in list_alerts(conn, **filters)]


def registered(engine: sa.Engine) -> Chain:
    chain = Chain(SITE, DEVICE)
    chain.register(engine)
    return chain


def test_a_box_alert_delivered_twice_is_one_case_counted_once(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.add(alert_payload(), type="alert.raised")
    ingest(engine, chain, 1, 1)
    ingest(engine, chain, 1, 1, hours=2)  # the ack was lost: the box sends the batch again

    [case] = cases(engine)
    assert (case.dedupe_key, case.code, case.source, case.severity, case.action, case.count) == (
        f"{SITE}:{KEY}", "card_points_day", "box", "warning", "hold", 1)
    assert (case.site_id, case.device_id, case.till_id, case.cashier_id, case.card_token, case.sale_id) == (
        SITE, DEVICE, "till-1", "c-7", TOKEN, "s-1")
    assert case.figures == {"points": 600, "limit": 500}
    assert case.events == [{"device_id": DEVICE, "seq": 1}]
    assert (case.state, case.raised_at, case.state_at, case.state_by) == ("open", T0 + timedelta(hours=1),
                                                                          T0 + timedelta(hours=1), None)
    with engine.connect() as conn:
        case_view = get_alert(conn, alert_id=case.id)
    assert case_view is not None
    assert [(row.from_state, row.to_state, row.username) for row in case_view.history] == [(None, "open", None)]


def test_the_same_key_again_counts_on_the_case_and_another_key_opens_another(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.add(alert_payload(), type="alert.raised", occurred_at=T0)
    chain.add(alert_payload(figures={"points": 900, "limit": 500}, action="decline"), type="alert.raised",
              occurred_at=T0 + timedelta(hours=2))
    chain.add(alert_payload(key="velocity:" + TOKEN + ":2025-03-14", code="velocity", action="flag",
                            severity="info"), type="alert.raised", occurred_at=T0 + timedelta(hours=3))
    ingest(engine, chain, 1, 1)
    ingest(engine, chain, 1, 3, hours=4)  # the first again, with the two new ones

    velocity, points = cases(engine)
    assert (points.count, points.figures, points.action) == (2, {"points": 900, "limit": 500}, "decline")
    assert points.events == [{"device_id": DEVICE, "seq": 1}, {"device_id": DEVICE, "seq": 2}]
    # first_at: when the box's rule first fired; last_at: the last event of the case.
    assert (points.first_at, points.last_at) == (T0 - timedelta(minutes=30), T0 + timedelta(hours=2))
    assert (velocity.code, velocity.count, velocity.severity) == ("velocity", 1, "info")
    assert [case.code for case in cases(engine, code="velocity")] == ["velocity"]
    assert [case.code for case in cases(engine, severity="warning")] == ["card_points_day"]


def test_an_alert_that_does_not_validate_opens_no_case_and_stops_nothing(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.add(alert_payload(severity="apocalyptic"), type="alert.raised")
    chain.add(alert_payload(key="velocity:x:2025-03-14", code="velocity"), type="alert.raised")
    ingest(engine, chain, 1, 2)
    assert [case.code for case in cases(engine)] == ["velocity"]


def test_a_case_keeps_the_first_events_and_counts_them_all(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for seq in range(1, MAX_EVENTS + 6):
            raise_alert(conn, dedupe_key="hub:test:x", code="chain_gap", severity="critical", source="hub",
                        summary="s", first_at=T0, at=T0, event_ref=(DEVICE, seq))
        raise_alert(conn, dedupe_key="hub:test:x", code="chain_gap", severity="critical", source="hub",
                    summary="s", first_at=T0, at=T0, event_ref=(DEVICE, 3))  # already counted
    [case] = cases(engine)
    assert case.count == MAX_EVENTS + 5
    assert [ref["seq"] for ref in case.events] == list(range(1, MAX_EVENTS + 1))


def test_two_writers_raising_the_same_key_at_once_make_one_case(engine: sa.Engine) -> None:
    def raise_one(conn: sa.Connection, seq: int) -> None:
        raise_alert(conn, dedupe_key="hub:race", code="overdraft", severity="warning", source="hub",
                    summary="s", first_at=T0, at=T0, event_ref=(DEVICE, seq))

    errors: list[BaseException] = []

    def second() -> None:
        try:
            with engine.begin() as conn:
                raise_one(conn, 2)  # waits on the first writer's uncommitted insert
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    with engine.begin() as conn:
        raise_one(conn, 1)
        writer = threading.Thread(target=second)
        writer.start()
    writer.join(timeout=30)
    assert not writer.is_alive() and errors == []
    [case] = cases(engine)
    assert case.count == 2 and [ref["seq"] for ref in case.events] == [1, 2]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_history)).scalar_one() == 1


@pytest.mark.parametrize(("path", "refused"), [
    (["acknowledged", "resolved", "open", "acknowledged", "open", "resolved"], None),
    (["resolved", "open", "resolved"], None),
    (["open"], "open already"),
    (["acknowledged", "acknowledged"], "acknowledged already"),
    (["resolved", "acknowledged"], "can go to open, not acknowledged"),
])
def test_transitions_record_who_when_and_why(engine: sa.Engine, path: list[str], refused: str | None) -> None:
    with engine.begin() as conn:
        alert_id = raise_alert(conn, dedupe_key="hub:t", code="overdraft", severity="warning", source="hub",
                               summary="s", first_at=T0, at=T0)
    done = []
    for n, state in enumerate(path, start=1):
        at = T0 + timedelta(minutes=n)
        if refused is not None and n == len(path):
            with pytest.raises(AlertError) as caught, engine.begin() as conn:
                transition(conn, alert_id=alert_id, to_state=state, username="ann", note="late", at=at)
            assert caught.value.kind == "conflict" and refused in str(caught.value)
            break
        with engine.begin() as conn:
            case = transition(conn, alert_id=alert_id, to_state=state, username="ann", note=f"step {n}", at=at)
        done.append(state)
        assert (case.row.state, case.row.state_by, case.row.state_at, case.row.note) == (state, "ann", at,
                                                                                          f"step {n}")
    with engine.connect() as conn:
        case_view = get_alert(conn, alert_id=alert_id)
    assert case_view is not None
    assert [(row.from_state, row.to_state) for row in case_view.history] == list(
        zip([None, "open", *done][:-1], ["open", *done], strict=True))
    assert [row.username for row in case_view.history] == [None] + ["ann"] * len(done)


def test_an_unknown_case_is_not_found(engine: sa.Engine) -> None:
    with pytest.raises(AlertError) as caught, engine.begin() as conn:
        transition(conn, alert_id=42, to_state="acknowledged", username="ann", note=None, at=T0)
    assert caught.value.kind == "not_found"
    with engine.connect() as conn:
        assert get_alert(conn, alert_id=42) is None


def test_cases_page_newest_first_and_filter_by_state_site_and_time(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        ids = [raise_alert(conn, dedupe_key=f"hub:p:{n}", code="overdraft", severity="warning", source="hub",
                           site_id="riverside" if n % 2 else "harbour", summary="s", first_at=T0,
                           at=T0 + timedelta(hours=n)) for n in range(7)]
        transition(conn, alert_id=ids[3], to_state="resolved", username="ann", note=None, at=T0)
    first = [case.id for case in cases(engine, limit=3)]
    assert first == ids[::-1][:3]
    assert [case.id for case in cases(engine, limit=3, before_id=first[-1])] == ids[::-1][3:6]
    assert [case.id for case in cases(engine, site_id="harbour")] == [ids[6], ids[4], ids[2], ids[0]]
    assert [case.id for case in cases(engine, state="resolved")] == [ids[3]]
    assert [case.id for case in cases(engine, since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=4))] == [
        ids[3], ids[2]]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar_one() == 7


def test_a_key_longer_than_the_column_still_makes_one_case(engine: sa.Engine) -> None:
    # A box's key (up to 201 characters) under a site id of 64 is longer than the column holds.
    long_key = "s" * 64 + ":card_points_day:" + "t" * 160 + ":2025-03-14"
    with engine.begin() as conn:
        for seq in (1, 2):
            raise_alert(conn, dedupe_key=long_key, code="card_points_day", severity="warning", source="box",
                        summary="s", first_at=T0, at=T0, event_ref=(DEVICE, seq))
        raise_alert(conn, dedupe_key=long_key[:-1] + "5", code="card_points_day", severity="warning", source="box",
                    summary="s", first_at=T0, at=T0, event_ref=(DEVICE, 3))
    found = sorted(cases(engine), key=lambda row: row.id)
    assert [row.count for row in found] == [2, 1]
    assert all(len(row.dedupe_key) <= 240 for row in found)
