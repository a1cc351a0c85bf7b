"""Opening the journal with its keys, as the CLI and the agent need it."""

from __future__ import annotations

import logging

from edge.errors import KeyFileError
from edge.settings import EdgeSettings
from edge.store.crypto import Sealer
from edge.store.journal import Journal
from edge.store.keys import create_master_key, derive_key, load_master_key

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
