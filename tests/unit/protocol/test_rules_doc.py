"""docs/rules.md, the guide HQ writes bundles from: its example bundle validates, is the demo's, and every
field of every part of a bundle is described."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from protocol import fraud, programme
from protocol.rules import Redemption, RuleBundle

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")


def example() -> dict[str, Any]:
    """The ```json block after the `<!-- bundle -->` marker."""
    found = re.search(r"<!-- bundle -->\s*```json\n(.*?)\n```", DOC, re.DOTALL)
    assert found is not None, "docs/rules.md has no ```json block after <!-- bundle -->"
    loaded: dict[str, Any] = json.loads(found.group(1))
    return loaded


def test_the_docs_example_bundle_validates_as_a_draft_the_hub_would_publish() -> None:
    draft = example()
    assert not {"version", "published_at", "signature", "schema"} & set(draft)  # the hub sets these
    bundle = RuleBundle.model_validate({**draft, "version": 1, "published_at": "2026-12-01T00:00:00Z"})
    assert bundle.tiers is not None
    assert [level.tier_id for level in bundle.tiers.levels] == ["regular", "silver", "gold"]
    assert bundle.passes[0].sku == "PASS-CINE" and bundle.campaigns[0].sponsor == "Northlight Pictures"
    assert {film.title for film in bundle.films} >= set(bundle.campaigns[0].match.films)


def test_the_docs_example_is_the_demos_bundle() -> None:
    spec = importlib.util.spec_from_file_location("demo_rules", ROOT / "deploy" / "demo_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.demo_rules(datetime(2026, 12, 15, 9, tzinfo=UTC)) == example()


PARTS: list[type[BaseModel]] = [
    programme.Earning, programme.TierLevel, programme.Tiers, programme.DiscountStep, programme.SpendDiscount,
    programme.Expiry, programme.Burn, programme.MonthlyBonus, programme.Birthday, programme.PassProduct,
    programme.Caps, programme.Programme, programme.DayPart, programme.Film, programme.CampaignMatch,
    programme.Campaign, Redemption, RuleBundle, fraud.FraudRules, fraud.PointsLimit, fraud.CountLimit,
    fraud.TwoTills, fraud.RedeemAfterEarning, fraud.Travel,
]


@pytest.mark.parametrize("part", PARTS, ids=lambda part: part.__name__)
def test_every_field_of_every_part_is_in_the_guide(part: type[BaseModel]) -> None:
    guide = DOC.split("<!-- bundle -->")[0]  # the text, not the example
    hub_set = {"version", "published_at", "signature", "schema_"}
    missing = [name for name in part.model_fields if name not in hub_set and not re.search(rf"\b{name}\b", guide)]
    assert missing == [], f"docs/rules.md does not describe {part.__name__}: {missing}"
