"""Authenticated encryption of journal rows (AES-256-GCM); card tokens are protocol.cards.card_token."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import StoreError

NONCE_BYTES = 12


class Sealer:
    """Encrypts and decrypts blobs under one key; `key_id` is stored beside each blob for rotation."""

    def __init__(self, key: bytes, key_id: str) -> None:
        self._aead = AESGCM(key)
        self.key_id = key_id

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """nonce || ciphertext+tag; `aad` binds the blob to its row so rows cannot be swapped."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext; StoreError when the blob was altered, moved or sealed under another key."""
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise StoreError("journal row fails authentication (altered, moved or wrong key)") from exc
