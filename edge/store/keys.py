"""The device master key: 32 random bytes in a file outside the database, readable by the agent only."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.errors import KeyFileError

log = logging.getLogger(__name__)
KEY_BYTES = 32


def create_master_key(path: Path) -> bytes:
    """Write a new random master key to `path` (mode 0600); refuses to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"master key already exists at {path}; refusing to overwrite it") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create master key at {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    log.info("created a new device master key at %s", path)
    return key


def load_master_key(path: Path) -> bytes:
    """Read the master key; KeyFileError when missing, too open to others, or of the wrong size."""
    try:
        info = path.stat()
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"master key not found at {path}; run 'marquee-edge init' first") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read master key at {path}: {exc.strerror}") from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"master key {path} is readable by others; chmod 600 it")
    if len(data) != KEY_BYTES:
        raise KeyFileError(f"master key {path} has {len(data)} bytes, expected {KEY_BYTES}")
    return data


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose (e.g. the journal), derived from the master key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(master)
