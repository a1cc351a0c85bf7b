"""Opening the journal and the identity key, as the CLI and the agent need them."""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import KeyFileError
from edge.settings import EdgeSettings
from edge.store.crypto import Sealer
from edge.store.journal import Journal
from edge.store.keys import (
    create_identity_key,
    create_master_key,
    derive_key,
    load_identity_key,
    load_master_key,
)
from protocol.signing import public_key_text

log = logging.getLogger(__name__)
JOURNAL_KEY_ID = "journal-v1"


def open_journal(settings: EdgeSettings, *, create_key: bool) -> Journal:
    """The journal under the device master key; a first start may create the key, never replace one."""
    key_path = settings.key_path
    if not key_path.exists() and create_key:
        if settings.journal_path.exists():
            raise KeyFileError(
                f"journal {settings.journal_path} exists but its master key {key_path} is missing; "
                "restore the key (a new one cannot read the journal)"
            )
        create_master_key(key_path)
    master = load_master_key(key_path)
    sealer = Sealer(derive_key(master, JOURNAL_KEY_ID), key_id=JOURNAL_KEY_ID)
    return Journal(settings.journal_path, device_id=settings.device_id, sealer=sealer)


def open_identity(settings: EdgeSettings, *, create: bool) -> Ed25519PrivateKey:
    """The box's identity key; when missing and `create`, a new one, with the hub command that registers it.

    A box that lost its key makes a new one rather than stop answering its tills; the hub refuses what
    it signs until the new key is registered (`--replace-key`).
    """
    path = settings.identity_path
    if create and not path.exists():
        key = create_identity_key(path)
        log.warning(
            "new identity key %s: the hub accepts nothing from this box until it is registered: "
            "marquee-hub devices add --site %s --device %s --public-key %s",
            path, settings.site_id, settings.device_id, public_key_text(key),
        )
        return key
    return load_identity_key(path)
