"""A box running a programme where points pay for tickets: for the redemption tests and the doc's examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.agent import Agent
from edge.devices.pos import PosFrame, PosFrameParser
from protocol.rules import Earning, Redemption, RuleBundle
from protocol.signing import public_key_text, sign_bundle
from tests.edge_support import PEPPER, edge_settings, new_journal

HUB = Ed25519PrivateKey.generate()
SHOW = "2026-11-23T19:30:00Z"


def points_bundle(version: int = 1, **redemption: Any) -> RuleBundle:
    """10 % of everything earned; 10 points pay one cent of a ticket; holds of 300 s; no offline cap."""
    return RuleBundle(
        version=version, published_at=datetime(2026, 11, 25, tzinfo=UTC), currency="EUR",
        earning=(Earning(rule_id="tickets", kind="ticket", basis_points=1000),
                 Earning(rule_id="bar", kind="concession", basis_points=1000)),
        redemption=Redemption(**{"enabled": True, "points_per_unit": 10, "kinds": ("ticket",), **redemption}),
    )


def redeeming_agent(tmp_path: Path, bundle: RuleBundle | None = None, **settings: Any) -> Agent:
    """A box (not started: tests drive `handle_sale`) that trusts HUB and runs `bundle`."""
    config = edge_settings(tmp_path, hub_public_key=public_key_text(HUB), **settings)
    agent = Agent(config, journal=new_journal(config), pepper=PEPPER.encode())
    bundle = bundle or points_bundle()
    if agent.rules.current.version != bundle.version:  # a restarted box runs the bundle it kept
        assert agent.rules.offer(sign_bundle(bundle, HUB).model_dump_json(by_alias=True).encode())
    return agent


def request(kind: str, sale_id: str, *, ticket: int = 1250, popcorn: int = 650, **extra: Any) -> bytes:
    """A request of the doc's shape: one ticket and one popcorn, plus `extra` fields."""
    items: list[dict[str, Any]] = [{"kind": "ticket", "sku": "TKT-STD", "film": "Dune: Part Two", "hall": "h2",
                                    "showtime": SHOW, "qty": 1, "price": ticket}]
    if popcorn:
        items.append({"kind": "concession", "sku": "POP-L", "description": "Popcorn L", "qty": 1, "price": popcorn})
    body: dict[str, Any] = {"type": kind, "sale_id": sale_id, "till": "t1", "cashier": "c07", "currency": "EUR",
                            "items": items, **extra}
    if kind == "cancel":
        body = {"type": "cancel", "sale_id": sale_id, "till": "t1", **extra}
    return json.dumps(body, separators=(",", ":")).encode()


def answer(frame: bytes) -> dict[str, Any]:
    """The JSON of the box's answer frame."""
    (item,) = PosFrameParser().feed(frame)
    assert isinstance(item, PosFrame)
    loaded: dict[str, Any] = json.loads(item.payload)
    return loaded


def payload(frame: bytes) -> bytes:
    (item,) = PosFrameParser().feed(frame)
    assert isinstance(item, PosFrame)
    return item.payload


def rules_bundle(version: int = 1, **fields: Any) -> RuleBundle:
    """The chain of docs/pos-protocol.md section 9: tiers, a pass, the birthday ticket, a film's campaign."""
    data: dict[str, Any] = {
        "version": version, "published_at": "2026-11-01T00:00:00Z", "currency": "EUR", "timezone": "Europe/Paris",
        "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000, "day_parts": {"matinee": 50}},
                    {"rule_id": "bar", "kind": "concession", "basis_points": 500}],
        "tiers": {"levels": [{"tier_id": "regular", "name": "Regular"},
                             {"tier_id": "silver", "name": "Silver", "min_visits": 6, "bonus_percent": 25,
                              "discount_bp": 500},
                             {"tier_id": "gold", "name": "Gold", "min_visits": 12, "bonus_percent": 50,
                              "discount_bp": 1000, "free_upgrade": True, "early_booking": True}]},
        "passes": [{"pass_id": "cine-pass", "name": "CinePass", "sku": "PASS-CINE", "validity_days": 30,
                    "films_per_week": 2, "per_day": 1}],
        "birthday": {},
        "expiry": {"shelf_life_months": 12},
        "day_parts": [{"day_part_id": "matinee", "start": "10:00", "end": "17:00"}],
        "films": [{"title": "Dune: Part Two", "genres": ["sci-fi"], "distributor": "Legendary Pictures"}],
        "campaigns": [{"campaign_id": "dune-double", "name": "Dune: double points", "sponsor": "Legendary Pictures",
                       "starts_at": "2026-11-01T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z",
                       "match": {"films": ["Dune: Part Two"]}, "bonus_percent": 100}],
        "redemption": {"enabled": True, "points_per_unit": 10, "kinds": ["ticket"]},
    }
    data.update(fields)
    return RuleBundle.model_validate(data)
