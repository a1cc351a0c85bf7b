"""The box's configuration: the example file works, and mistakes are named clearly."""

from __future__ import annotations

import os
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
    assert settings.mqtt.port == 8883 and settings.hub_public_key is None
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


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"tills": [{"till_id": "t1", "pos_port": "/dev/ttyUSB0", "card_port": "/dev/ttyUSB1"}]},
         "card_port moved"),
        ({"readers": [{"till": "t1", "kind": "rdm6300", "port": "/dev/ttyUSB0"}]}, "configured more than once"),
        ({"readers": [{"till": "t1", "kind": "rdm6300", "port": "/dev/ttyUSB1"},
                      {"till": "t1", "kind": "barcode", "port": "/dev/ttyUSB1"}]}, "configured more than once"),
        ({"readers": [{"till": "t9", "kind": "rdm6300", "port": "/dev/ttyUSB1"}]}, "t9, which is not configured"),
        ({"readers": [{"till": "t1", "kind": "rdm6300", "port": "/dev/ttyUSB1", "name": "t1-pos"}]},
         "device names must be unique: t1-pos"),
        ({"readers": [{"till": "t1", "kind": "rdm6300", "port": "/dev/ttyUSB1", "lrc": True}]},
         "lrc do not apply to a rdm6300 reader"),
        ({"readers": [{"till": "t1", "kind": "wiegand", "port": "/dev/ttyUSB1"}]}, "set wiegand_bits = 34"),
        ({"tills": [{"till_id": "t1", "pos_transport": "tcp"}], "pos_tcp": {"listen": "0.0.0.0:7100"}},
         "a TCP till needs pos_peers"),
        ({"tills": [{"till_id": "t1", "pos_transport": "tcp", "pos_peers": ["10.0.0.12/32"]}]},
         "add a \\[pos_tcp\\] section"),
        ({"tills": [{"till_id": "t" * 33, "pos_port": "/dev/ttyUSB0"}]}, "at most 32 characters"),
    ],
)
def test_device_mistakes_that_would_lose_cards_are_refused_with_the_fix(
    tmp_path: Path, change: dict[str, object], complaint: str
) -> None:
    base: dict[str, object] = {"tills": [{"till_id": "t1", "pos_port": "/dev/ttyUSB0"}], "readers": []}
    with pytest.raises(ValidationError, match=complaint):
        edge_settings(tmp_path, **{**base, **change})


def test_the_example_describes_every_reader_family_and_a_tcp_till(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARQUEE_EDGE_PEPPER", "a-real-chain-pepper-0123")
    settings = load_settings(EXAMPLE)
    assert {reader.kind for reader in settings.readers} >= {"rdm6300", "magstripe", "pn532", "wiegand", "barcode"}
    assert [name for name, _ in settings.named_readers()][:2] == ["t1-rdm6300", "t1-magstripe"]
    assert settings.tills[1].pos_transport == "tcp" and settings.pos_tcp is not None
    assert (settings.pos_tcp.host, settings.pos_tcp.port) == ("0.0.0.0", 7100)
    assert next(r for r in settings.readers if r.kind == "pn532").baudrate == 115200


def test_two_names_of_one_device_are_one_port(tmp_path: Path) -> None:
    # As /dev/serial/by-id/usb-FTDI_... and /dev/ttyUSB0 are: two links under /dev to one device.
    assert os.path.realpath("/dev/stdin") == os.path.realpath("/dev/fd/0")
    with pytest.raises(ValidationError, match="configured more than once"):
        edge_settings(tmp_path, tills=[{"till_id": "t1", "pos_port": "/dev/stdin"}],
                      readers=[{"till": "t1", "kind": "rdm6300", "port": "/dev/fd/0"}])
