"""The chain's blocklist at the hub: each change is the next version, published whole, signed with the hub's
rules key and retained on the real broker; a change the broker could not take is kept and published again when
the hub's ingest connects."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.bundles import create_signing_key
from cloud.errors import HubError, StaffError
from cloud.ingest.worker import IngestWorker
from cloud.members import store as members
from cloud.members.model import CardInput, MemberDraft
from cloud.members.vault import MemberVault
from cloud.settings import HubSettings
from cloud.staff import blocklist
from protocol.blocklist import Blocklist
from protocol.cards import CardScheme
from protocol.codec import decode
from protocol.errors import SignatureError
from protocol.signing import verify_blocklist
from protocol.topics import BLOCKLIST
from tests.support.brokers import Mosquitto, free_port
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0

PEPPER = "chain-pepper-for-tests-0123456789"
CARDS = members.CardContext(PEPPER.encode(), CardScheme())
TOKEN = "ab" * 32


class Retained:
    """A real paho client subscribed to the blocklist topic: every message it got, decoded."""

    def __init__(self, port: int) -> None:
        self.got: list[Blocklist] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                   client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=MQTTProtocolVersion.MQTTv5)
        self._client.on_message = self._message
        self._client.on_connect = lambda client, *_: client.subscribe(BLOCKLIST, qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        assert message.retain or message.topic == BLOCKLIST
        with self._lock:
            self.got.append(decode(Blocklist, bytes(message.payload)))

    def latest(self, version: int) -> Blocklist:
        def found() -> Blocklist | None:
            with self._lock:
                return next((b for b in reversed(self.got) if b.version == version), None)
        got = wait_for(found, timeout=10, what=f"blocklist version {version} on the broker")
        assert got is not None
        return got

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def add(engine: sa.Engine, kind: str, value: str, minutes: int = 0) -> int:
    with engine.begin() as conn:
        return blocklist.add(conn, kind=kind, value=value, reason="test", by="ada", at=T0 + timedelta(minutes=minutes))


def test_each_change_is_the_next_version_and_the_list_reads_back(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert blocklist.current(conn) is None  # nothing to publish before the first change
    with engine.begin() as conn:
        member_id = members.enrol(conn, MemberVault(b"k" * 32), CARDS, MemberDraft(), at=T0, by="t")
    assert add(engine, "card", TOKEN) == 1
    assert add(engine, "member", member_id, minutes=1) == 2
    assert add(engine, "card", "cd" * 16, minutes=2) == 3
    with engine.begin() as conn:
        assert blocklist.remove(conn, kind="card", value=TOKEN, at=T0 + timedelta(minutes=3)) == 4
        listed = blocklist.current(conn)
        assert [(e.kind, e.value, e.reason, e.added_by) for e in blocklist.entries(conn)] == [
            ("card", "cd" * 16, "test", "ada"), ("member", member_id, "test", "ada")]
    assert listed is not None and listed.version == 4 and listed.issued_at == T0 + timedelta(minutes=3)
    assert (listed.cards, listed.members) == (["cd" * 16], [member_id])
    assert listed.lists("cd" * 16, None) and listed.lists(None, member_id) and not listed.lists(TOKEN, "m-x")


@pytest.mark.parametrize(("kind", "value", "error", "expected"), [
    ("card", TOKEN, "conflict", "on the blocklist already"),
    ("card", "4111111111111111", "invalid", "token"),       # a card number is never taken for a token
    ("card", "AB" * 16, "invalid", "token"),
    ("member", "m0000000000000000", "invalid", "no such member"),
    ("staff", "c-7", "invalid", "kind"),
])
def test_a_listing_is_refused_by_what_is_wrong(engine: sa.Engine, kind: str, value: str, error: str,
                                               expected: str) -> None:
    add(engine, "card", TOKEN)
    with pytest.raises(StaffError, match=expected) as refused:
        add(engine, kind, value)
    assert refused.value.kind == error and "4111111111111111" not in str(refused.value)
    with engine.begin() as conn:
        assert blocklist.current(conn).version == 1  # type: ignore[union-attr]
        with pytest.raises(StaffError) as missing:
            blocklist.remove(conn, kind="member", value="m0000000000000000", at=T0)
        assert missing.value.kind == "not_found"


@pytest.mark.parametrize(("held", "refused"), [(2, False), (3, True)])
def test_the_list_is_bounded_by_what_boxes_take(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, held: int,
                                                refused: bool) -> None:
    monkeypatch.setattr(blocklist, "MAX_BLOCKLIST", 3)  # the protocol's 20,000, scaled down
    for n in range(held):
        add(engine, "card", f"{n:032x}")
    if refused:
        with pytest.raises(StaffError, match="holds 3 cards") as full:
            add(engine, "card", TOKEN)
        assert full.value.kind == "conflict"
    else:
        assert add(engine, "card", TOKEN) == 3


def test_a_card_number_is_listed_by_its_token() -> None:
    token = blocklist.card_value(CARDS, CardInput(kind="em4100", number="0003887558"))
    assert token == CARDS.token(CardInput(kind="em4100", number="0003887558"))[0]
    with pytest.raises(StaffError) as bad:
        blocklist.card_value(CARDS, CardInput(kind="em4100", number="12AB"))
    assert bad.value.kind == "invalid" and "12AB" not in str(bad.value)


def test_the_signed_list_is_retained_on_the_broker_and_verifies_with_the_hub_key(
        engine: sa.Engine, mosquitto: Mosquitto, tmp_path: Path) -> None:
    key = create_signing_key(tmp_path / "rules.key")
    settings = HubSettings(mqtt_port=mosquitto.port, rules_key_file=tmp_path / "rules.key")
    add(engine, "card", TOKEN)
    with engine.connect() as conn:
        signed = blocklist.signed(conn, key)
    assert signed is not None
    blocklist.push(settings, signed)
    reader = Retained(mosquitto.port)  # subscribed after the publish: the broker kept it
    try:
        got = reader.latest(1)
    finally:
        reader.close()
    verify_blocklist(got, key.public_key())
    assert got.lists(TOKEN, None) and got == signed
    with pytest.raises(SignatureError):
        verify_blocklist(got, Ed25519PrivateKey.generate().public_key())
    with engine.connect() as conn:  # rebuilt from the tables, the same version signs the same
        assert blocklist.signed(conn, key) == signed


def test_a_broker_that_is_down_is_a_hub_error(engine: sa.Engine, tmp_path: Path) -> None:
    key = create_signing_key(tmp_path / "rules.key")
    add(engine, "card", TOKEN)
    with engine.connect() as conn:
        signed = blocklist.signed(conn, key)
    assert signed is not None
    with pytest.raises(HubError, match="cannot reach the broker"):
        blocklist.push(HubSettings(mqtt_port=free_port()), signed)


def test_the_ingest_worker_publishes_the_latest_again_when_it_connects(
        engine: sa.Engine, db_url: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    key = create_signing_key(tmp_path / "rules.key")
    add(engine, "card", TOKEN)
    add(engine, "card", "cd" * 16)  # published by nobody: as if the broker had been down for both
    worker = IngestWorker(HubSettings(database_url=db_url, mqtt_port=mosquitto.port,
                                      rules_key_file=tmp_path / "rules.key"), engine)
    reader = Retained(mosquitto.port)
    worker.start()
    try:
        got = reader.latest(2)
        verify_blocklist(got, key.public_key())
        assert got.cards == sorted(["cd" * 16, TOKEN])
        assert worker.blocklist.published == 2
        # The broker restarts having lost what it retained: the worker's reconnection brings the list back.
        mosquitto.stop()
        (mosquitto.workdir / "mosquitto.db").unlink(missing_ok=True)
        mosquitto.start()
        wait_for(lambda: worker.connected, timeout=40, what="ingest back on the broker")
        again = Retained(mosquitto.port)
        try:
            assert again.latest(2) == got
        finally:
            again.close()
    finally:
        worker.stop()
        reader.close()


def test_without_a_key_the_worker_says_so_once_and_publishes_nothing(
        engine: sa.Engine, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    add(engine, "card", TOKEN)
    republisher = blocklist.BlocklistRepublisher(engine, tmp_path / "missing.key")
    sent: list[tuple[str, bytes]] = []
    for _ in range(3):
        republisher.on_connected(lambda topic, payload: sent.append((topic, payload)))
    assert sent == [] and republisher.published is None
    assert len([r for r in caplog.records if "blocklist not published again" in r.getMessage()]) == 1
