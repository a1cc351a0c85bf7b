"""The hub's own cases: a box's journal altered, damaged or missing an event, its chain broken by a clone, a
member's points spent twice; one case per device (member), code and day however many events say so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from cloud.fraud.cases import MAX_EVENTS, list_alerts
from cloud.ingest.store import ingest_batch, store_batch
from protocol.messages import EventBatch, LostEvent
from protocol.signing import sign_batch
from tests.unit.hub.factories import T0, Chain, sale_payload

SITE, DEVICE = "riverside", "riverside-box1"
NOW = T0 + timedelta(hours=1)


def with_lost(chain: Chain, first: int, last: int, reasons: dict[int, str]) -> EventBatch:
    """The events first..last, those in `reasons` sent as lost for that reason."""
    chosen = chain.events[first - 1:last]
    batch = EventBatch(site_id=chain.site_id, device_id=chain.device_id,
                       events=[event for event in chosen if event.seq not in reasons],
                       lost=[LostEvent(seq=event.seq, hash=event.hash, reason=reasons[event.seq])
                             for event in chosen if event.seq in reasons])
    return sign_batch(batch, chain.key)


def cases(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {case.row.code: case.row for case in list_alerts(conn)}


def registered(engine: sa.Engine) -> Chain:
    chain = Chain(SITE, DEVICE)
    chain.register(engine)
    return chain


def test_lost_events_open_one_case_per_reason_with_counts(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(12)
    reasons = {2: "unreadable", 3: "unreadable", 4: "unreadable", 6: "missing", 8: "unreadable_page",
               9: "unreadable_page", 10: "a_reason_of_later_boxes"}
    for received in (NOW, NOW + timedelta(minutes=5)):  # delivered twice: counted once
        with engine.begin() as conn:
            ingest_batch(conn, batch=with_lost(chain, 1, 12, reasons), site_id=SITE, received_at=received)

    found = cases(engine)
    assert sorted(found) == ["chain_gap", "journal_altered", "storage_damaged"]
    expected = {"journal_altered": ("critical", 3, {"first_seq": 2, "last_seq": 4, "events": 3}),
                "chain_gap": ("critical", 1, {"first_seq": 6, "last_seq": 6, "events": 1}),
                "storage_damaged": ("warning", 2, {"first_seq": 8, "last_seq": 9, "events": 2})}
    for code, (severity, count, figures) in expected.items():
        case = found[code]
        assert (case.severity, case.count, case.figures, case.source, case.state) == (
            severity, count, figures, "hub", "open"), code
        assert (case.site_id, case.device_id, case.first_at, case.last_at) == (SITE, DEVICE, NOW, NOW)
        assert case.dedupe_key == f"hub:{code}:{DEVICE}:2025-03-14" and DEVICE in case.summary
    assert [ref["seq"] for ref in found["journal_altered"].events] == [2, 3, 4]


def test_a_flood_of_lost_events_is_one_case_counting_them_all(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(1200)
    for first in (1, 501, 1001):  # three batches of the most a batch carries
        last = min(first + 499, 1200)
        with engine.begin() as conn:
            ingest_batch(conn, batch=with_lost(chain, first, last, dict.fromkeys(range(first, last + 1), "missing")),
                         site_id=SITE, received_at=NOW + timedelta(seconds=first))
    [case] = cases(engine).values()
    assert (case.code, case.count, case.figures) == ("chain_gap", 1200, {"first_seq": 1, "last_seq": 1200,
                                                                         "events": 1200})
    assert len(case.events) == MAX_EVENTS
    assert case.last_at == NOW + timedelta(seconds=1001)


def test_lost_events_on_another_day_open_another_case(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(2)
    for seq, received in ((1, NOW), (2, NOW + timedelta(days=1))):
        with engine.begin() as conn:
            ingest_batch(conn, batch=with_lost(chain, seq, seq, {seq: "unreadable"}), site_id=SITE,
                         received_at=received)
    with engine.connect() as conn:
        keys = sorted(case.row.dedupe_key for case in list_alerts(conn))
    assert keys == [f"hub:journal_altered:{DEVICE}:2025-03-14", f"hub:journal_altered:{DEVICE}:2025-03-15"]


def test_a_chain_conflict_opens_a_case_once_however_often_the_clone_resends(engine: sa.Engine) -> None:
    genuine = registered(engine)
    genuine.sales(2)
    with engine.begin() as conn:
        ingest_batch(conn, batch=genuine.batch(1, 2), site_id=SITE, received_at=T0)
    clone = Chain(SITE, DEVICE, key=genuine.key)  # a restored backup or a copied SD card: seqs 1.. again
    clone.sales(2)
    for n in range(3):
        with engine.begin() as conn:
            result = store_batch(conn, batch=clone.batch(1, 2), site_id=SITE, received_at=NOW + timedelta(minutes=n))
        assert result.conflict

    [case] = cases(engine).values()
    assert (case.code, case.severity, case.count, case.device_id, case.site_id) == (
        "chain_conflict", "critical", 1, DEVICE, SITE)
    assert case.figures == {"first_seq": 1, "last_seq": 1, "events": 1}
    assert case.dedupe_key == f"hub:chain_conflict:{DEVICE}:2025-03-14"


def test_an_overdraft_opens_a_case(engine: sa.Engine) -> None:
    token = "cd" * 16

    def sale(site: str, sale_id: str, *, earned: int = 0, redeemed: int = 0) -> dict[str, Any]:
        return sale_payload(site, sale_id=sale_id) | {"card_token": token, "loyalty": {
            "status": "earned", "points_earned": earned, "points_redeemed": redeemed,
            "amount_redeemed": redeemed // 10, "hold_id": "h" + "0" * 16 if redeemed else None}}

    home, away = Chain("riverside", "riverside-box1"), Chain("harbour", "harbour-box1")
    for chain in (home, away):
        chain.register(engine)
    home.add(sale("riverside", "s-1", earned=1000))
    home.add(sale("riverside", "s-2", redeemed=800), occurred_at=T0 + timedelta(hours=2))
    away.add(sale("harbour", "s-9", redeemed=700), occurred_at=T0 + timedelta(hours=3))
    away.add(sale("harbour", "s-10", redeemed=100), occurred_at=T0 + timedelta(hours=3, minutes=5))
    with engine.begin() as conn:
        ingest_batch(conn, batch=home.batch(1, 2), site_id="riverside", received_at=T0 + timedelta(hours=4))
    assert cases(engine) == {}
    for seq in (1, 2):  # the overdraft opens, then grows: one case
        with engine.begin() as conn:
            ingest_batch(conn, batch=away.batch(seq, seq), site_id="harbour",
                         received_at=T0 + timedelta(hours=5, minutes=seq))

    [case] = cases(engine).values()
    assert (case.code, case.severity, case.source, case.count) == ("overdraft", "warning", "hub", 1)
    assert case.member_id is not None and case.dedupe_key == f"hub:overdraft:{case.member_id}:2025-03-14"
    assert case.figures == {"points": 500, "sites": 2}
    assert "harbour, riverside" in case.summary and token not in case.summary
