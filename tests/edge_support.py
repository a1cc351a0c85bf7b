"""Building edge settings and journals for tests, with keys generated in the test's temporary folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.settings import EdgeSettings
from edge.store.bootstrap import open_journal
from edge.store.journal import Journal
from protocol.cards import CardId, CardScheme, em4100_id

PEPPER = "test-pepper-0123456789abcdef"


def edge_settings(tmp_path: Path, **overrides: Any) -> EdgeSettings:
    """Settings for a box `riverside-box1` of site `riverside`, data under tmp_path."""
    data: dict[str, Any] = {
        "site_id": "riverside",
        "device_id": "riverside-box1",
        "data_dir": tmp_path / "data",
        "pepper": PEPPER,
        "tills": [{"till_id": "t1", "pos_port": "loop://"}],
        "readers": [{"till": "t1", "kind": "rdm6300", "port": "loop://"}],
    }
    data.update(overrides)
    return EdgeSettings.model_validate(data)


def write_config(path: Path, settings: EdgeSettings) -> Path:
    """The settings as a TOML file, as a technician would write it."""
    dumped = json.loads(settings.model_dump_json())
    dumped["pepper"] = settings.pepper.get_secret_value()
    lines: list[str] = []
    tables: list[str] = []
    for key, value in dumped.items():
        if value is None:
            continue
        if isinstance(value, dict):
            body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in value.items() if v is not None)
            tables.append(f"\n[{key}]\n{body}")
        elif isinstance(value, list):
            for entry in value:
                body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items() if v is not None)
                tables.append(f"\n[[{key}]]\n{body}")
        else:
            lines.append(f"{key} = {json.dumps(value)}\n")
    path.write_text("".join(lines) + "".join(tables))
    path.chmod(0o600)  # it holds the pepper: the agent refuses a world-readable one
    return path


def new_journal(settings: EdgeSettings) -> Journal:
    """The box's journal, creating its master key on first use."""
    return open_journal(settings, create_key=True)


def fob(hex10: str, scheme: CardScheme | None = None) -> CardId:
    """The card id of an EM4100 fob as an RDM6300 reads it (10 hex chars: version and tag)."""
    return em4100_id(int(hex10, 16), 40, scheme or CardScheme())
