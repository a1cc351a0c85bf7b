"""The JSON schema of every wire message is snapshotted, so a contract change shows in review.

After an intended change: MARQUEE_UPDATE_SNAPSHOTS=1 pytest tests/unit/protocol/test_schema_snapshots.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from protocol.alerts import AlertRaised
from protocol.blocklist import Blocklist
from protocol.directory import DirectoryPage
from protocol.events import Event, SaleConflict, SaleRecorded
from protocol.messages import Ack, DeviceStatus, EventBatch, LostEvent
from protocol.rules import RuleBundle
from protocol.staff import DrawerOpened, HoldDecided, PriceOverride, SaleRefunded, StaffSignedIn, StaffSignedOut

SNAPSHOTS = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"


@pytest.mark.parametrize(
    "model", [Event, SaleRecorded, SaleConflict, EventBatch, LostEvent, Ack, DeviceStatus, RuleBundle, DirectoryPage,
              Blocklist, AlertRaised, StaffSignedIn, StaffSignedOut, SaleRefunded, PriceOverride, DrawerOpened,
              HoldDecided]
)
def test_schema_matches_snapshot(model: type[BaseModel]) -> None:
    current = json.dumps(model.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"
    path = SNAPSHOTS / f"{model.__name__}.json"
    if os.environ.get("MARQUEE_UPDATE_SNAPSHOTS") == "1":
        path.write_text(current)
    assert path.exists(), f"no snapshot for {model.__name__}; run with MARQUEE_UPDATE_SNAPSHOTS=1"
    assert current == path.read_text(), f"{model.__name__}'s wire schema changed; review and update the snapshot"
