"""The box's keys, in files outside the database, readable by the agent only: the master key (32 random
bytes, from which the journal key is derived) and the Ed25519 identity key (signs what the box sends)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.errors import KeyFileError

log = logging.getLogger(__name__)
KEY_BYTES = 32


def _write_private(path: Path, data: bytes, *, what: str) -> None:
    """Write a new file readable by its owner only (0600, folder 0700), durably; never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{what} already exists at {path}; refusing to overwrite it") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create {what} at {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    log.info("created a new device %s at %s", what, path)


def create_master_key(path: Path) -> bytes:
    """Write a new random master key to `path` (mode 0600); refuses to overwrite an existing one."""
    key = os.urandom(KEY_BYTES)
    _write_private(path, key, what="master key")
    return key


def _read_private(path: Path, *, what: str, hint: str) -> bytes:
    try:
        info = path.stat()
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{what} not found at {path}; {hint}") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} at {path}: {exc.strerror}") from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{what} {path} is readable by others; chmod 600 it")
    return data


def load_master_key(path: Path) -> bytes:
    """Read the master key; KeyFileError when missing, too open to others, or of the wrong size."""
    data = _read_private(path, what="master key", hint="run 'marquee-edge init' first")
    if len(data) != KEY_BYTES:
        raise KeyFileError(f"master key {path} has {len(data)} bytes, expected {KEY_BYTES}")
    return data


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose (e.g. the journal), derived from the master key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(master)


def create_identity_key(path: Path) -> Ed25519PrivateKey:
    """Write a new Ed25519 identity key to `path` (PKCS#8 PEM, mode 0600); refuses to overwrite one.

    The hub registers its public half; it signs every batch and status, and is the key the box's TLS
    client certificate will carry.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(path, pem, what="identity key")
    return key


def load_identity_key(path: Path) -> Ed25519PrivateKey:
    """Read the identity key; KeyFileError when missing, open to others, or not an Ed25519 key."""
    data = _read_private(path, what="identity key", hint="run 'marquee-edge init' first")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"identity key {path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"identity key {path} is not an Ed25519 key")
    return key
