"""End-to-end fixtures: a whole site (real ptys, a real `marquee-edge run`) and a real hub."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.devices.pos import PosFrame, PosFrameParser, SaleAnswer, encode_frame, parse_answer
from edge.devices.rdm6300 import encode_frame as card_frame
from edge.settings import EdgeSettings
from edge.simulator.pty import PtyEnd, create_pty_link
from tests.edge_support import edge_settings, write_config
from tests.support.brokers import Mosquitto
from tests.support.processes import Hub, Program, edge_program


@dataclass
class Site:
    """One box with one till: its card reader and POS terminal are ptys this test plays."""

    settings: EdgeSettings
    config: Path
    card: PtyEnd
    pos: PosEnd
    program: Program


class PosEnd:
    """The POS terminal's side of its line: sends sale frames, reads answer frames."""

    def __init__(self, pty: PtyEnd) -> None:
        self.pty = pty
        self.parser = PosFrameParser()
        self.pending: list[object] = []

    def sale(self, body: bytes, timeout: float = 10.0) -> SaleAnswer:
        """Send a sale and wait for its answer; like a real POS, send the same frame again after 1 s of
        silence (the box may not have its line open yet; the same sale id is answered once)."""
        sale_id = json.loads(body)["sale_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pty.write(encode_frame(body))
            resend_at = time.monotonic() + 1.0
            while time.monotonic() < min(resend_at, deadline):
                self.pending.extend(self.parser.feed(self.pty.read_available(0.05)))
                frames = [item for item in self.pending if isinstance(item, PosFrame)]
                self.pending.clear()
                for frame in frames:
                    answer = parse_answer(frame.payload)
                    if answer.sale_id == sale_id:  # an answer to an earlier resend is not this sale's
                        return answer
        raise AssertionError(f"no answer on the POS line within {timeout}s")


def present_card(site: Site, card_id: str) -> None:
    """Hold a tag to the reader: the module sends its frame a few times."""
    site.card.write(card_frame(card_id) * 3)


@pytest.fixture
def make_site(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto
) -> Iterator[callable]:  # type: ignore[valid-type]
    """Start a box for a site; when the test has a hub, the box is provisioned there first (its key
    registered), as a technician would."""
    sites: list[Site] = []
    hub: Hub | None = request.getfixturevalue("hub") if "hub" in request.fixturenames else None

    def make(site_id: str = "riverside", *, register: bool = True, **overrides: object) -> Site:
        root = tmp_path / site_id
        card = create_pty_link(root / "dev" / "card-t1")
        pos = create_pty_link(root / "dev" / "pos-t1")
        settings = edge_settings(
            root, site_id=site_id, device_id=f"{site_id}-box1",
            tills=[{"till_id": "t1", "pos_port": str(pos.link)}],
            readers=[{"till": "t1", "kind": "rdm6300", "port": str(card.link)}],
            mqtt={"port": mosquitto.port, "keepalive_s": 5},
            sync={"ack_timeout_s": 3, "heartbeat_s": 1},
            **overrides,
        )
        config = write_config(root / "edge.toml", settings)
        if hub is not None and register:
            hub.register(config, site_id=site_id, device_id=settings.device_id)
        program = edge_program(config, root)
        program.start()
        site = Site(settings, config, card, PosEnd(pos), program)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.program.stop()
        site.card.close()
        site.pos.pty.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Hub]:
    """`marquee-hub serve` on the default SQLite file, and on PostgreSQL as in production."""
    url = f"sqlite:///{tmp_path / 'hub.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    h = Hub(workdir=tmp_path, mqtt_port=mosquitto.port, database_url=url)
    h.start()
    yield h
    h.stop()
