"""Member directory pages as the hub publishes them: entries, deltas and snapshots, signed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.codec import encode
from protocol.directory import DirectoryEntry, DirectoryPage
from protocol.signing import sign_directory_page


def token_of(name: str) -> str:
    """A card token (64 hex) made from a readable name, as `protocol.cards.card_token` shapes them."""
    return hashlib.sha256(name.encode()).hexdigest()


def entry(name: str, *, member: str = "m-1", balance: int = 0, **fields: Any) -> DirectoryEntry:
    """An active member's card `name` with `balance` points."""
    data: dict[str, Any] = {"token": token_of(name), "member_id": member, "status": "active", "balance": balance}
    data.update(fields)
    return DirectoryEntry.model_validate(data)


def delta(version_from: int, version: int, entries: Sequence[DirectoryEntry] = (), *, key: Ed25519PrivateKey,
          removed: Sequence[str] = (), for_device: str | None = None) -> DirectoryPage:
    """A signed delta `version_from` -> `version`."""
    page = DirectoryPage(kind="delta", version_from=version_from, version=version, entries=list(entries),
                         removed=list(removed), for_device=for_device)
    return sign_directory_page(page, key)


def snapshot(version: int, pages: Sequence[Sequence[DirectoryEntry]], *, key: Ed25519PrivateKey,
             for_device: str | None = None) -> list[DirectoryPage]:
    """A signed snapshot at `version`, one page per sequence of entries."""
    return [sign_directory_page(DirectoryPage(kind="snapshot", version_from=0, version=version, page=number,
                                              pages=len(pages), entries=list(entries), for_device=for_device), key)
            for number, entries in enumerate(pages, start=1)]


def wire(page: DirectoryPage) -> bytes:
    """The page as it comes off the members topic."""
    return encode(page)
