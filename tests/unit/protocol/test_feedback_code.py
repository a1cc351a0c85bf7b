"""The feedback code of a ticket (`protocol.feedback`): test vectors, agreement with the standard base32 of the same
80 bits, how typed codes are read, and the bundle's feedback address."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from protocol.feedback import CROCKFORD, feedback_link, normal_code, ticket_code
from protocol.rules import RuleBundle, default_bundle
from protocol.signing import sign_bundle, verify_bundle

VECTORS = [
    ("0" * 64, "0000000000000000"),
    ("f" * 64, "ZZZZZZZZZZZZZZZZ"),
    (hashlib.sha256(b"marquee").hexdigest(), "1BD0R0TM744SRJAY"),  # the code docs/pos-protocol.md shows
    ("0123456789abcdef" * 4, "04HMASW9NF6YY093"),
]


@pytest.mark.parametrize(("event_hash", "code"), VECTORS)
def test_vectors(event_hash: str, code: str) -> None:
    assert ticket_code(event_hash) == code


def test_the_code_is_the_standard_base32_of_the_first_80_bits_in_crockfords_alphabet() -> None:
    standard = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD)
    for n in range(50):
        event_hash = hashlib.sha256(n.to_bytes(4, "big")).hexdigest()
        expected = base64.b32encode(bytes.fromhex(event_hash[:20])).decode().translate(standard)
        assert ticket_code(event_hash) == expected
        assert set(expected) <= set(CROCKFORD) and len(expected) == 16


@pytest.mark.parametrize("bad", ["", "0" * 63, "0" * 65, "G" * 64, "F" * 64])
def test_only_an_event_hash_makes_a_code(bad: str) -> None:
    with pytest.raises(ValueError):
        ticket_code(bad)


def test_codes_as_people_type_them() -> None:
    assert normal_code("1bd0r0tm744srjay") == "1BD0R0TM744SRJAY"
    assert normal_code("IBDOROTM744SRJAY") == "1BD0R0TM744SRJAY"  # I and L read as 1, O as 0
    assert normal_code("lBD0R0TM744SRJAY") == "1BD0R0TM744SRJAY"
    for bad in ("1BD0R0TM744SRJAU", "1BD0R0TM744SRJA", "1BD0R0TM744SRJAY0", "1BD0R0TM744SRJ<>", ""):
        assert normal_code(bad) is None


def test_the_link_joins_the_address_the_site_and_the_code() -> None:
    assert feedback_link("https://hq.example.com/f", "riverside", "1BD0R0TM744SRJAY") == \
        "https://hq.example.com/f/riverside/1BD0R0TM744SRJAY"
    assert feedback_link("https://hq.example.com/f/", "riverside", "X" * 16).count("//") == 1


def bundle(**fields: object) -> RuleBundle:
    data = default_bundle("EUR", datetime(2026, 11, 1, tzinfo=UTC)).model_dump(mode="json", by_alias=True)
    return RuleBundle.model_validate({**data, **fields})


@pytest.mark.parametrize("url", ["https://hq.example.com/f", "http://10.0.0.5:8000/f", "https://example.com"])
def test_a_feedback_address_is_an_http_or_https_url(url: str) -> None:
    assert bundle(feedback_url=url).feedback_url == url


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.com/f", "https://example.com/f?x=1",
                                 "https://exa mple.com/f", "https://example.com/\"><script>", "https://" + "a" * 200])
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        bundle(feedback_url=url)


def test_a_bundle_without_an_address_reads_and_verifies_as_before() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_bundle(bundle(), key)
    assert "feedback_url" not in signed.model_dump(mode="json", by_alias=True)
    verify_bundle(RuleBundle.model_validate_json(signed.model_dump_json(by_alias=True)), key.public_key())
    with_url = sign_bundle(bundle(feedback_url="https://hq.example.com/f"), key)
    again = RuleBundle.model_validate_json(with_url.model_dump_json(by_alias=True))
    verify_bundle(again, key.public_key())
    assert again.feedback_url == "https://hq.example.com/f"
