"""The box's configuration: the example file works, and mistakes are named clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.errors import ConfigError
from edge.settings import load_settings
from tests.edge_support import edge_settings

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "edge.example.toml"


def test_the_example_refuses_its_placeholder_pepper_until_the_real_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="pepper is a placeholder"):
        load_settings(EXAMPLE)
    monkeypatch.setenv("MARQUEE_EDGE_PEPPER", "a-real-chain-pepper-0123")
    monkeypatch.setenv("MARQUEE_EDGE_MQTT__PORT", "8883")
    settings = load_settings(EXAMPLE)
    assert [t.till_id for t in settings.tills] == ["t1", "t2"]
    assert settings.mqtt.port == 8883 and settings.loyalty.ticket_basis_points == 1000
    assert "a-real-chain-pepper" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('site_id = "Riverside"\n', "site_id"),
        ('site_id = "s"\ndevice_id = "d"\ndata_dir = "/x"\npepper = "short"\n', "pepper"),
        ('site_id = "s"\ndevice_id = "d"\ndata_dir = "/x"\npepper = "0123456789abcdefg"\nbogus = 1\n', "bogus"),
        ("this is = not toml", "cannot read"),
    ],
)
def test_a_bad_config_names_what_is_wrong(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=complaint):
        load_settings(path)


def test_two_tills_with_the_same_id_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Everything else is valid (the same file with distinct ids loads), so only the duplicate can fail it.
    monkeypatch.setenv("MARQUEE_EDGE_PEPPER", "a-real-chain-pepper-0123")
    config = 'site_id = "s"\ndevice_id = "d"\ndata_dir = "{data}"\n' \
             '[[tills]]\ntill_id = "t1"\npos_port = "a"\n[[tills]]\ntill_id = "{second}"\npos_port = "b"\n'
    path = tmp_path / "edge.toml"
    path.write_text(config.format(data=tmp_path, second="t2"))
    assert [till.till_id for till in load_settings(path).tills] == ["t1", "t2"]
    path.write_text(config.format(data=tmp_path, second="t1"))
    with pytest.raises(ConfigError, match="till ids must be unique"):
        load_settings(path)


@pytest.mark.parametrize("bad", [0, 0.05, 5.5])
def test_the_pos_inter_byte_timeout_defaults_to_half_a_second_within_bounds(tmp_path: Path, bad: float) -> None:
    till = {"till_id": "t1", "pos_port": "loop://"}
    assert edge_settings(tmp_path, tills=[till]).tills[0].pos_inter_byte_timeout_s == 0.5
    longest = edge_settings(tmp_path, tills=[{**till, "pos_inter_byte_timeout_s": 5}])
    assert longest.tills[0].pos_inter_byte_timeout_s == 5
    with pytest.raises(ValidationError, match="pos_inter_byte_timeout_s"):
        edge_settings(tmp_path, tills=[{**till, "pos_inter_byte_timeout_s": bad}])


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
