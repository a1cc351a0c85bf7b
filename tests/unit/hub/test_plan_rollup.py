"""The pure parts of ingest: planning a batch against the chain head, and box-office deltas."""

from __future__ import annotations

from datetime import date

from cloud.ingest.plan import items_of, plan_batch
from cloud.ingest.rollup import RollupDelta, RollupKey, sale_deltas
from protocol.events import SaleRecorded
from protocol.messages import LostEvent
from tests.unit.hub.factories import Chain, sale_payload


def test_plan_skips_duplicates_then_accepts_the_contiguous_rest() -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(5)

    held: dict[int, str | None] = {event.seq: event.hash for event in chain.events[1:3]}
    plan = plan_batch(chain.events[1:5], last_seq=3, last_hash=chain.events[2].hash, held=held)

    assert [event.seq for event in plan.accept] == [4, 5]
    assert (plan.duplicates, plan.last_seq, plan.last_hash) == (2, 5, chain.events[4].hash)
    assert plan.resend_from is None and plan.conflict is None


def test_plan_reports_a_gap_and_a_link_that_does_not_hold() -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(4)

    gap = plan_batch(chain.events[2:], last_seq=1, last_hash=chain.events[0].hash, held={})
    broken = plan_batch(chain.events[1:], last_seq=1, last_hash="e" * 64, held={})

    assert (gap.accept, gap.resend_from, gap.last_seq) == ((), 2, 1)
    assert broken.accept == () and broken.resend_from is None and broken.conflict is not None
    assert broken.conflict.event.seq == 2 and broken.conflict.held_hash is None
    assert "prev_hash" in str(broken.conflict.error)


def test_plan_treats_another_event_at_a_held_seq_as_a_conflict() -> None:
    held_chain = Chain("site-a", "box-1")
    held_chain.sales(3)
    rebuilt = Chain("site-a", "box-1")  # a fresh journal under the same device id
    rebuilt.sales(4)
    held: dict[int, str | None] = {event.seq: event.hash for event in held_chain.events}

    plan = plan_batch(rebuilt.events, last_seq=3, last_hash=held_chain.events[2].hash, held=held)

    assert plan.accept == () and plan.duplicates == 0 and plan.conflict is not None
    assert (plan.conflict.event.seq, plan.conflict.held_hash) == (1, held_chain.events[0].hash)
    assert (plan.last_seq, plan.resend_from) == (3, None)
    assert "differs from the event the hub holds" in str(plan.conflict.error)


def test_plan_takes_lost_events_in_the_run_and_links_across_them() -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(4)
    items = items_of(chain.events[:1] + chain.events[2:],
                     [LostEvent(seq=2, hash=chain.events[1].hash, reason="unreadable")])

    plan = plan_batch(items, last_seq=0, last_hash=None, held={})
    unknown = plan_batch(
        items_of(chain.events[2:], [LostEvent(seq=2, hash=None, reason="unreadable")]),
        last_seq=1, last_hash=chain.events[0].hash, held={},
    )
    wrong = plan_batch(
        items_of(chain.events[2:], [LostEvent(seq=2, hash="a" * 64, reason="unreadable")]),
        last_seq=1, last_hash=chain.events[0].hash, held={},
    )

    assert [item.seq for item in plan.accept] == [1, 2, 3, 4] and [lost.seq for lost in plan.lost] == [2]
    assert (unknown.last_seq, unknown.conflict) == (4, None)  # an unknown hash is taken on the signature
    assert wrong.conflict is not None and wrong.last_seq == 2

def test_a_sale_counts_once_under_its_first_ticket_line() -> None:
    chain = Chain("site-a", "box-1")
    payload = sale_payload("site-a", film="Dune", hall="1", tickets=2, ticket_price=1000, concession=300)
    payload["items"].insert(0, {"kind": "concession", "sku": "cola", "unit_price": 250})
    payload["items"].append({"kind": "ticket", "sku": "child", "film": "Up", "hall": "2", "unit_price": 700})
    payload["total"] = 2 * 1000 + 300 + 250 + 700
    event = chain.add(payload)
    sale = event.typed_payload()
    assert isinstance(sale, SaleRecorded)

    deltas = sale_deltas("site-a", [(event, sale)])

    day = date(2025, 3, 14)
    assert deltas == {
        RollupKey("site-a", day, "", "", "EUR"): RollupDelta(concession_revenue=550),
        RollupKey("site-a", day, "Dune", "1", "EUR"): RollupDelta(tickets=2, ticket_revenue=2000, sales=1),
        RollupKey("site-a", day, "Up", "2", "EUR"): RollupDelta(tickets=1, ticket_revenue=700),
    }
