"""What the hub does with staff events: one audit row per staff action, the daily activity per till, cashier and
card in the chain's time zone, and the points refunds take back and supervisors release, in the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.bundles import publish_draft
from cloud.db.fraud_tables import staff_activity, staff_audit
from cloud.db.schema import member_cards, member_ledger, members
from cloud.ingest.conflicts import resolve_conflicts
from cloud.ingest.store import ingest_batch, store_batch
from tests.unit.hub.factories import T0, Chain, sale_payload

SITE, TILL = "riverside", "till-1"
TOKEN = "cd" * 16


def card_sale(sale_id: str, *, earned: int = 0, held: int = 0, redeemed: int = 0, token: str | None = TOKEN,
              fraud: dict[str, Any] | None = None) -> dict[str, Any]:
    loyalty: dict[str, Any] = {"status": "held" if held else "earned", "points_earned": earned, "points_held": held,
                               "points_redeemed": redeemed, "amount_redeemed": redeemed // 10,
                               "hold_id": "h" + "0" * 16 if redeemed else None}
    return sale_payload(SITE, sale_id=sale_id) | {"card_token": token, "loyalty": loyalty, "fraud": fraud}


def till(**fields: Any) -> dict[str, Any]:
    return {"site_id": SITE, "till_id": TILL} | fields


STAFF_DAY: list[tuple[str, dict[str, Any]]] = [
    ("staff.signed_in", till(staff_id="c-7", badge=True)),
    ("sale.recorded", card_sale("s-1", earned=100)),
    ("sale.recorded", card_sale("s-2", token=None) | {"loyalty": {"status": "no_card"}}),
    ("till.override", till(cashier_id="c-7", kind="discount", sale_id="s-2", amount=300, reason="damaged seat",
                           approved_by="sup-1")),
    ("sale.refunded", till(cashier_id="c-7", kind="refund", refund_id="r-1", sale_id="s-1", original_till_id=TILL,
                           original_seq=2, amount=1425, card_token=TOKEN, points_reversed=50, spend_reversed=1425)),
    ("sale.recorded", card_sale("s-3", held=80, fraud={"action": "hold", "reasons": ["staff_own_card"]})),
    ("fraud.decided", till(sale_id="s-3", sale_seq=6, supervisor_id="sup-1", approved=True, card_token=TOKEN,
                           points=80, spend=2850, visit=True)),
    ("till.drawer_opened", till(cashier_id="c-7", reason="change")),
    ("sale.refunded", till(cashier_id="c-7", kind="void", refund_id="r-2", sale_id="s-2", original_till_id=TILL,
                           original_seq=3, amount=2850)),
    ("fraud.decided", till(sale_id="s-9", sale_seq=1, supervisor_id="sup-1", approved=False, card_token=TOKEN,
                           points=40)),
    ("staff.signed_out", till(staff_id="c-7")),
]


def played(engine: sa.Engine, *, times: int = 1) -> Chain:
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    for kind, payload in STAFF_DAY:
        chain.add(payload, type=kind)
    for n in range(times):  # a redelivered batch changes nothing
        with engine.begin() as conn:
            ingest_batch(conn, batch=chain.batch(1, len(STAFF_DAY)), site_id=SITE,
                         received_at=T0 + timedelta(hours=1 + n))
    return chain


def test_every_staff_action_is_one_audit_row_without_personal_data(engine: sa.Engine) -> None:
    played(engine, times=2)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(staff_audit).order_by(staff_audit.c.seq)).all()
    assert [(row.seq, row.staff_id, row.action, row.sale_id, row.amount, row.points) for row in rows] == [
        (1, "c-7", "staff.signed_in", None, None, None),
        (4, "c-7", "till.override", "s-2", 300, None),
        (5, "c-7", "sale.refunded", "s-1", 1425, 50),
        (7, "sup-1", "fraud.decided", "s-3", None, 80),
        (8, "c-7", "till.drawer_opened", None, None, None),
        (9, "c-7", "sale.refunded", "s-2", 2850, 0),
        (10, "sup-1", "fraud.decided", "s-9", None, 40),
        (11, "c-7", "staff.signed_out", None, None, None),
    ]
    assert {row.site_id for row in rows} == {SITE} and {row.till_id for row in rows} == {TILL}
    assert rows[0].occurred_at == T0 + timedelta(minutes=1)
    assert rows[0].detail == {"badge": True, "known": True}
    assert rows[1].detail == {"kind": "discount", "reason": "damaged seat", "approved_by": "sup-1"}
    assert rows[2].detail == {"kind": "refund", "refund_id": "r-1", "original_till_id": TILL, "original_seq": 2,
                              "card_token": TOKEN, "points_returned": 0, "spend_reversed": 1425}
    assert rows[3].detail == {"sale_seq": 6, "approved": True, "card_token": TOKEN, "spend": 2850, "visit": True}
    assert rows[7].detail == {"reason": "signed_out"}


def test_the_days_activity_adds_sales_points_refunds_and_overrides_per_till_cashier_and_card(
        engine: sa.Engine) -> None:
    played(engine, times=2)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(staff_activity).order_by(staff_activity.c.card_token)).all()
    counts = ("sales", "points_earned", "points_held", "points_redeemed", "refunds", "refunded", "overrides",
              "flagged")
    assert [(row.day, row.site_id, row.till_id, row.cashier_id, row.card_token) for row in rows] == [
        (date(2025, 3, 14), SITE, TILL, "c-7", ""), (date(2025, 3, 14), SITE, TILL, "c-7", TOKEN)]
    assert [tuple(getattr(row, name) for name in counts) for row in rows] == [
        (1, 0, 0, 0, 1, 2850, 1, 0),  # the sale without a card, its void, the manual discount
        (2, 100, 80, 0, 1, 1425, 0, 1),  # an earning sale, a held one (flagged), a partial refund
    ]


def test_activity_days_are_the_chains_local_days(engine: sa.Engine) -> None:
    draft = {"currency": "EUR", "timezone": "Asia/Tokyo",
             "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}]}
    with engine.begin() as conn:
        publish_draft(conn, draft, Ed25519PrivateKey.generate(), at=datetime(2025, 1, 1, tzinfo=UTC))
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    chain.add(card_sale("s-1", earned=10), occurred_at=datetime(2025, 3, 14, 14, 59, tzinfo=UTC))  # 23:59 there
    chain.add(card_sale("s-2", earned=20), occurred_at=datetime(2025, 3, 14, 15, 0, tzinfo=UTC))  # midnight there
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(1, 2), site_id=SITE, received_at=T0)
        rows = conn.execute(sa.select(staff_activity.c.day, staff_activity.c.points_earned)
                            .order_by(staff_activity.c.day)).all()
    assert [tuple(row) for row in rows] == [(date(2025, 3, 14), 10), (date(2025, 3, 15), 20)]


def test_refunds_take_points_back_and_approvals_release_them_in_the_ledger(engine: sa.Engine) -> None:
    played(engine, times=2)
    with engine.connect() as conn:
        member_id = conn.execute(sa.select(member_cards.c.member_id)
                                 .where(member_cards.c.card_token == TOKEN)).scalar_one()
        ledger = conn.execute(sa.select(member_ledger.c.kind, member_ledger.c.points, member_ledger.c.seq)
                              .where(member_ledger.c.member_id == member_id).order_by(member_ledger.c.id)).all()
        member = conn.execute(sa.select(members).where(members.c.member_id == member_id)).one()
    # Earned 100, a refund of half the sale takes 50 back, the supervisor released the 80 held; the refused
    # hold (seq 10) and the void of a sale without a card move nothing.
    assert [tuple(row) for row in ledger] == [("earn", 100, 2), ("refund", -50, 5), ("approval", 80, 7)]
    assert member.balance == 130
    # The refund took back the spend of half the sale; the approval counted the held sale's.
    assert member.account["lifetime_spend"] == 2850 - 1425 + 2850


def test_a_conflict_resolved_for_the_box_replaces_the_staff_record_of_the_seqs_it_takes(engine: sa.Engine) -> None:
    hub_side = Chain(SITE, "riverside-box1")
    hub_side.register(engine)
    hub_side.add(till(staff_id="c-7"), type="staff.signed_in")
    hub_side.add(card_sale("s-1", earned=100))
    hub_side.add(till(cashier_id="c-7", kind="override", sale_id="s-1", amount=500), type="till.override")
    with engine.begin() as conn:
        ingest_batch(conn, batch=hub_side.batch(1, 3), site_id=SITE, received_at=T0)
    box_side = Chain(SITE, "riverside-box1", key=hub_side.key, events=list(hub_side.events[:1]))
    box_side.add(card_sale("s-2", earned=30) | {"cashier_id": "c-8"})
    box_side.add(till(cashier_id="c-8", reason="float count"), type="till.drawer_opened")  # where the override was
    with engine.begin() as conn:
        assert store_batch(conn, batch=box_side.batch(1, 3), site_id=SITE, received_at=T0).conflict
    with engine.begin() as conn:
        resolve_conflicts(conn, device_id="riverside-box1", keep="box", at=T0, note=None)
    with engine.begin() as conn:
        assert store_batch(conn, batch=box_side.batch(1, 3), site_id=SITE, received_at=T0).ack == box_side.ack(3)
        audit = conn.execute(sa.select(staff_audit.c.seq, staff_audit.c.staff_id, staff_audit.c.action)
                             .order_by(staff_audit.c.seq)).all()
        activity = conn.execute(sa.select(staff_activity.c.cashier_id, staff_activity.c.card_token,
                                          staff_activity.c.sales, staff_activity.c.points_earned,
                                          staff_activity.c.overrides)
                                .order_by(staff_activity.c.cashier_id, staff_activity.c.card_token)).all()
    assert [tuple(row) for row in audit] == [(1, "c-7", "staff.signed_in"), (3, "c-8", "till.drawer_opened")]
    # c-7's sale and override left with the hub's events; c-8's sale came with the box's.
    assert [tuple(row) for row in activity] == [("c-7", "", 0, 0, 0), ("c-7", TOKEN, 0, 0, 0),
                                                ("c-8", TOKEN, 1, 30, 0)]
