"""A comment sealed as member profiles are (`cloud.members.vault`): under a key of its own, that key wrapped by the
hub's member key, both bound to the answer's code. Nulling the wrapped key shreds the comment."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.errors import ConfigError
from cloud.ingest.counters import Throttle
from cloud.members.vault import NONCE_BYTES, MemberVault, VaultError, vault_from_settings
from cloud.settings import HubSettings

log = logging.getLogger(__name__)
_key_log = Throttle(log, every=3600)

MAX_COMMENT = 1000
"""Characters of a comment kept at most (the form says so, and refuses more)."""
KEY_RETRY_S = 60.0
"""How long the hub goes on without a member key before it looks for one again."""


class CommentSeal:
    """Seals and opens the comments of answers with the vault of the hub's member key."""

    def __init__(self, vault: MemberVault) -> None:
        self._vault = vault

    @property
    def key_id(self) -> str:
        """Names the member key the comment keys are wrapped by."""
        return self._vault.key_id

    def seal(self, *, code: str, text: str) -> tuple[bytes, bytes]:
        """The comment sealed, and its key wrapped (what the database keeps)."""
        key, wrapped = self._vault.new_data_key(_owner(code))
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, text.encode("utf-8"), _aad(code)), wrapped

    def open(self, *, code: str, sealed: bytes, wrapped: bytes) -> str:
        """The comment of the answer to `code` (VaultError when it does not open: altered, or another key)."""
        key = self._vault.unwrap(_owner(code), wrapped)
        try:
            plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(code))
        except (InvalidTag, ValueError) as exc:
            raise VaultError("a feedback comment does not open (altered, or sealed under another key)") from exc
        return plain.decode("utf-8", errors="replace")


def _owner(code: str) -> str:
    # Member ids have no ':', so no comment key can pass for a member's.
    return f"feedback:{code}"


def _aad(code: str) -> bytes:
    return f"comment:{code}".encode()


def app_seal(state: Any, settings: HubSettings) -> CommentSeal | None:
    """The sealer of the app whose `state` is given, under the hub's member key (built once, shared with the members
    API as `state.member_vault`); None while the hub has no usable key: comments are then neither kept nor opened."""
    vault = getattr(state, "member_vault", None)
    if vault is None:
        if time.monotonic() < getattr(state, "feedback_key_retry", 0.0):
            return None
        try:
            vault = vault_from_settings(settings.member_key, settings.member_key_file)
        except ConfigError as exc:
            state.feedback_key_retry = time.monotonic() + KEY_RETRY_S
            _key_log.warning("feedback comments are not kept nor shown: %s", exc)
            return None
        state.member_vault = vault
    return CommentSeal(vault)
