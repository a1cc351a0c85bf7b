"""Ed25519 public keys in text form; the signatures of batches and statuses (by a box) and of rule
bundles, member directory pages and the blocklist (by the hub).

A box signs each batch over the hashes of everything it carries (events and lost events), and each
status over its canonical encoding. Each event's hash covers its content and its link to the previous
event, so one signature per batch authenticates every event in it: only the holder of the device's
private key can extend its chain. The hub checks `verify_batch` before it touches any state. The hub
signs each rule bundle it publishes; a box runs only a bundle that `verify_bundle` accepts with the hub's
public key from its configuration.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

from protocol.blocklist import Blocklist
from protocol.canonical import canonical_bytes
from protocol.chain import check_hash
from protocol.directory import DirectoryPage
from protocol.errors import ChainError, SignatureError
from protocol.messages import DeviceStatus, EventBatch
from protocol.rules import RuleBundle

PUBLIC_KEY_PREFIX = "ed25519:"
_BATCH_CONTEXT = "marquee.batch-signature/1"
_STATUS_CONTEXT = "marquee.status-signature/1"
_BUNDLE_CONTEXT = "marquee.rules-signature/1"
_DIRECTORY_CONTEXT = "marquee.directory-signature/1"
_BLOCKLIST_CONTEXT = "marquee.blocklist-signature/1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_text(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """`ed25519:<43 chars of base64url>`: the form `marquee-edge identity` prints and the hub registers."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return PUBLIC_KEY_PREFIX + _b64(public.public_bytes_raw())


def parse_public_key(text: str) -> Ed25519PublicKey:
    """The key in `ed25519:...` form; SignatureError with the reason when it is not one."""
    text = text.strip()
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise SignatureError(f"a public key starts with {PUBLIC_KEY_PREFIX!r}")
    body = text[len(PUBLIC_KEY_PREFIX) :]
    try:
        raw = _unb64(body)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the public key is not base64url") from exc
    if len(raw) != 32 or _b64(raw) != body:
        raise SignatureError("an Ed25519 public key is 32 bytes (43 base64url characters)")
    return Ed25519PublicKey.from_public_bytes(raw)


def batch_signed_bytes(batch: EventBatch) -> bytes:
    """What a batch's signature covers: its site, device and the seq and hash of each item it carries."""
    return canonical_bytes(
        {
            "context": _BATCH_CONTEXT,
            "site_id": batch.site_id,
            "device_id": batch.device_id,
            "events": [[event.seq, event.hash] for event in batch.events],
            "lost": [[lost.seq, lost.hash, lost.reason] for lost in batch.lost],
        }
    )


def sign_batch(batch: EventBatch, key: Ed25519PrivateKey) -> EventBatch:
    """The batch with the box's signature."""
    return batch.model_copy(update={"signature": _b64(key.sign(batch_signed_bytes(batch)))})


def verify_batch(batch: EventBatch, key: Ed25519PublicKey) -> None:
    """Raise unless every event's hash matches its content, the events link to each other, and the
    signature is the device's over them. MalformedMessage for content no encoder can hash."""
    previous = None
    for event in batch.events:
        try:
            check_hash(event)
        except ChainError as exc:
            raise SignatureError(f"event #{event.seq}: hash does not match its content") from exc
        if previous is not None and previous.seq + 1 == event.seq and event.prev_hash != previous.hash:
            raise SignatureError(f"event #{event.seq}: prev_hash does not link to #{previous.seq}")
        previous = event
    _verify(key, batch.signature, batch_signed_bytes(batch), "batch")


def _whole_body_bytes(context: str, name: str, message: BaseModel) -> bytes:
    """A message signed whole: everything it carries (unknown fields included) but its signature."""
    body: dict[str, Any] = message.model_dump(mode="json", by_alias=True)
    body.pop("signature", None)
    return canonical_bytes({"context": context, name: body})


def status_signed_bytes(status: DeviceStatus) -> bytes:
    """What a status's signature covers: the whole status as sent, unknown fields included."""
    return _whole_body_bytes(_STATUS_CONTEXT, "status", status)


def sign_status(status: DeviceStatus, key: Ed25519PrivateKey) -> DeviceStatus:
    """The status with the box's signature."""
    return status.model_copy(update={"signature": _b64(key.sign(status_signed_bytes(status)))})


def verify_status(status: DeviceStatus, key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless the status is signed by `key` (MalformedMessage: cannot be encoded)."""
    _verify(key, status.signature, status_signed_bytes(status), "status")


def bundle_signed_bytes(bundle: RuleBundle) -> bytes:
    """What a bundle's signature covers: the whole bundle but its signature."""
    return _whole_body_bytes(_BUNDLE_CONTEXT, "bundle", bundle)


def sign_bundle(bundle: RuleBundle, key: Ed25519PrivateKey) -> RuleBundle:
    """The bundle with the hub's signature."""
    return bundle.model_copy(update={"signature": _b64(key.sign(bundle_signed_bytes(bundle)))})


def verify_bundle(bundle: RuleBundle, key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless the bundle is signed by the hub's `key`."""
    _verify(key, bundle.signature, bundle_signed_bytes(bundle), "rule bundle", signer="the hub")


def directory_signed_bytes(page: DirectoryPage) -> bytes:
    """What a directory page's signature covers: the whole page but its signature."""
    return _whole_body_bytes(_DIRECTORY_CONTEXT, "page", page)


def sign_directory_page(page: DirectoryPage, key: Ed25519PrivateKey) -> DirectoryPage:
    """The page with the hub's signature (the key that signs rule bundles)."""
    return page.model_copy(update={"signature": _b64(key.sign(directory_signed_bytes(page)))})


def verify_directory_page(page: DirectoryPage, key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless the page is signed by the hub's `key`."""
    _verify(key, page.signature, directory_signed_bytes(page), "directory page", signer="the hub")


def blocklist_signed_bytes(blocklist: Blocklist) -> bytes:
    """What a blocklist's signature covers: the whole list but its signature."""
    return _whole_body_bytes(_BLOCKLIST_CONTEXT, "blocklist", blocklist)


def sign_blocklist(blocklist: Blocklist, key: Ed25519PrivateKey) -> Blocklist:
    """The blocklist with the hub's signature (the key that signs rule bundles)."""
    return blocklist.model_copy(update={"signature": _b64(key.sign(blocklist_signed_bytes(blocklist)))})


def verify_blocklist(blocklist: Blocklist, key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless the blocklist is signed by the hub's `key`."""
    _verify(key, blocklist.signature, blocklist_signed_bytes(blocklist), "blocklist", signer="the hub")


def _verify(key: Ed25519PublicKey, signature: str | None, data: bytes, what: str, *, signer: str = "the device")\
        -> None:
    if signature is None:
        raise SignatureError(f"the {what} is not signed")
    try:
        key.verify(_unb64(signature), data)
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise SignatureError(f"the {what}'s signature does not verify with {signer}'s key") from exc
