"""Signed batches and statuses: only the holder of a device's key can produce what the hub accepts."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.chain import seal
from protocol.codec import decode, encode
from protocol.errors import MalformedMessage, SignatureError
from protocol.messages import DeviceStatus, EventBatch, LostEvent
from protocol.signing import (
    parse_public_key,
    public_key_text,
    sign_batch,
    sign_status,
    verify_batch,
    verify_status,
)
from tests.unit.protocol.factories import chain

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()


def signed_batch(n: int = 3, **fields: object) -> EventBatch:
    batch = EventBatch(site_id="riverside", device_id="riverside-box1", events=chain(n), **fields)
    return sign_batch(batch, KEY)


def test_a_signed_batch_verifies_after_the_wire() -> None:
    batch = signed_batch()
    verify_batch(decode(EventBatch, encode(batch)), PUBLIC)


def test_an_unsigned_batch_or_another_key_is_refused() -> None:
    unsigned = EventBatch(site_id="riverside", device_id="riverside-box1", events=chain(2))
    with pytest.raises(SignatureError, match="not signed"):
        verify_batch(unsigned, PUBLIC)
    stranger = sign_batch(unsigned, Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError, match="does not verify"):
        verify_batch(stranger, PUBLIC)


def test_a_forged_event_with_a_recomputed_hash_does_not_carry_the_signature() -> None:
    batch = signed_batch(2)
    last = batch.events[-1]
    forged_payload = {**last.payload, "total": 10_000_000}
    forged = seal(type=last.type, device_id=last.device_id, seq=last.seq, event_id=last.event_id,
                  occurred_at=last.occurred_at, clock_ok=True, prev_hash=last.prev_hash, payload=forged_payload)
    tampered = batch.model_copy(update={"events": [batch.events[0], forged]})
    with pytest.raises(SignatureError, match="does not verify"):
        verify_batch(tampered, PUBLIC)


def test_content_changed_under_its_old_hash_is_refused() -> None:
    batch = signed_batch(2)
    altered = batch.events[1].model_copy(update={"payload": {**batch.events[1].payload, "cashier_id": "c99"}})
    with pytest.raises(SignatureError, match="hash does not match"):
        verify_batch(batch.model_copy(update={"events": [batch.events[0], altered]}), PUBLIC)


def test_the_site_and_the_lost_events_are_covered_too() -> None:
    events = chain(3)
    batch = sign_batch(
        EventBatch(site_id="riverside", device_id="riverside-box1", events=[events[0], events[2]],
                   lost=[LostEvent(seq=2, hash=events[1].hash, reason="unreadable")]),
        KEY,
    )
    verify_batch(batch, PUBLIC)
    with pytest.raises(SignatureError):
        verify_batch(batch.model_copy(update={"site_id": "old-town"}), PUBLIC)
    with pytest.raises(SignatureError):
        verify_batch(batch.model_copy(update={"lost": [LostEvent(seq=2, hash=None, reason="other")]}), PUBLIC)


@settings(max_examples=150, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_any_changed_byte_of_a_signed_batch_is_refused_or_means_the_same(position: int, value: int) -> None:
    original = signed_batch(2)
    wire = bytearray(encode(original))
    index = position % len(wire)
    wire[index] = value
    try:
        received = decode(EventBatch, bytes(wire))
        verify_batch(received, PUBLIC)
    except (MalformedMessage, SignatureError):
        return
    # What verifies is the same batch (e.g. "Z" read as "z" in a timestamp): nothing was forged.
    assert received.events == original.events and received.site_id == original.site_id


def test_statuses_are_signed_over_everything_they_say() -> None:
    status = sign_status(DeviceStatus(site_id="riverside", device_id="riverside-box1", online=True, backlog=3), KEY)
    verify_status(decode(DeviceStatus, encode(status)), PUBLIC)
    with pytest.raises(SignatureError):
        verify_status(status.model_copy(update={"online": False}), PUBLIC)
    with pytest.raises(SignatureError, match="not signed"):
        verify_status(status.model_copy(update={"signature": None}), PUBLIC)


def test_public_keys_round_trip_and_bad_ones_say_why() -> None:
    text = public_key_text(KEY)
    assert text.startswith("ed25519:") and len(text) == 51
    assert public_key_text(parse_public_key(text)) == text
    for bad, reason in [("ssh-ed25519 AAAA", "starts with"), ("ed25519:abc", "32 bytes"),
                        ("ed25519:" + "!" * 43, "base64url"), (text + "A", "32 bytes")]:
        with pytest.raises(SignatureError, match=reason):
            parse_public_key(bad)
