"""Personal data at rest: sealed under a key per member, each key wrapped by the hub's member key.

The member key (32 random bytes, base64 in a 0600 file or in `MARQUEE_HUB_MEMBER_KEY`) never enters the
database. From it, HKDF derives two keys: one wraps every member's data key (AES-GCM, bound to the member
id), the other keys the HMACs that let HQ find a member by phone or e-mail without decrypting anyone.
Erasing a member destroys their wrapped data key: their sealed profile, in the database and in every
backup of it, can no longer be opened by anyone (crypto-shredding).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr, ValidationError

from cloud.errors import ConfigError, HubError
from cloud.members.model import Profile, normalise_email, normalise_phone

KEY_BYTES = 32
NONCE_BYTES = 12


class VaultError(HubError):
    """A sealed value or key that does not open (altered, or sealed under another key); never its content."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"marquee.members/" + purpose).derive(
        master)


def parse_member_key(text: str) -> bytes:
    """The 32 bytes of a member key written as base64 (ConfigError otherwise, without the text)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("the member key is not base64") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(f"the member key must be {KEY_BYTES} bytes (base64 of 32 random bytes)")
    return key


def create_member_key_file(path: Path) -> bool:
    """Write a new random member key to `path` (0600); False, and nothing written, when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
    return True


def read_member_key_file(path: Path) -> bytes:
    """The member key from its file; refused when others may read it (ConfigError says how to fix it)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise ConfigError(f"cannot read the member key file {path} ({exc.strerror}); "
                          "`marquee-hub members key` creates one") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the member key file {path} is not base64 text") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the member key file {path} may be read by other users; chmod 600 it")
    return parse_member_key(text)


class MemberVault:
    """Seals and opens members' personal data; computes the keyed hashes search uses."""

    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise ConfigError(f"the member key must be {KEY_BYTES} bytes")
        self._wrap = AESGCM(_derive(master, b"wrap"))
        self._lookup = _derive(master, b"lookup")
        self.key_id = hashlib.sha256(_derive(master, b"id")).hexdigest()[:16]
        """Names the member key (never reveals it): stored beside each wrapped key, for rotation."""

    def new_data_key(self, member_id: str) -> tuple[bytes, bytes]:
        """A fresh data key for `member_id` and its wrapped form (what the database keeps)."""
        key = AESGCM.generate_key(bit_length=256)
        return key, self._seal(self._wrap, key, f"key:{member_id}".encode())

    def unwrap(self, member_id: str, wrapped: bytes) -> bytes:
        """The member's data key."""
        return self._open(self._wrap, wrapped, f"key:{member_id}".encode(), "member data key")

    def seal_profile(self, member_id: str, data_key: bytes, profile: Profile) -> bytes:
        """The profile sealed under the member's data key, bound to the member id."""
        return self._seal(AESGCM(data_key), profile.model_dump_json(exclude_none=True).encode(),
                          f"profile:{member_id}".encode())

    def open_profile(self, member_id: str, data_key: bytes, blob: bytes) -> Profile:
        """The member's profile (VaultError when the blob does not open under that key)."""
        plain = self._open(AESGCM(data_key), blob, f"profile:{member_id}".encode(), "member profile")
        try:
            return Profile.model_validate_json(plain)
        except ValidationError:
            # Not chained: the error would carry the opened (personal) values into any traceback.
            raise VaultError("a sealed member profile opens but is not a profile") from None

    def phone_hash(self, phone: str) -> str:
        """HMAC of the normalised phone: equal for the same number however it was typed."""
        return self._hmac(b"phone:" + normalise_phone(phone).encode())

    def email_hash(self, email: str) -> str:
        """HMAC of the normalised e-mail."""
        return self._hmac(b"email:" + normalise_email(email).encode())

    def _hmac(self, data: bytes) -> str:
        return hmac.new(self._lookup, data, hashlib.sha256).hexdigest()

    @staticmethod
    def _seal(aead: AESGCM, plain: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + aead.encrypt(nonce, plain, aad)

    @staticmethod
    def _open(aead: AESGCM, blob: bytes, aad: bytes, what: str) -> bytes:
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise VaultError(f"a {what} does not open (altered, or sealed under another member key)") from exc


def vault_from_settings(member_key: SecretStr | None, member_key_file: Path) -> MemberVault:
    """The vault under the member key from the environment, else from its file (ConfigError: neither works)."""
    if member_key is not None:
        return MemberVault(parse_member_key(member_key.get_secret_value()))
    return MemberVault(read_member_key_file(member_key_file))
