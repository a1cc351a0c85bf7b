"""The session key: it signs session cookies and derives each session's CSRF token (HMAC-SHA256).

Every hub process of a chain must hold the same key, so it comes from the settings (`session_key`) or from a
file beside the hub's other keys, created 0600 on first use; several processes starting at once agree on one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

from cloud.errors import ConfigError

KEY_BYTES = 32


class SessionKey:
    """HMAC-SHA256 under the session key, one `purpose` per use so a value signed for one is no good for another."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise ConfigError(f"the session key must have at least {KEY_BYTES} bytes")
        self._secret = secret

    def sign(self, purpose: str, value: str) -> str:
        """The signature of `value` for `purpose`, as URL-safe base64 without padding."""
        digest = hmac.new(self._secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def check(self, purpose: str, value: str, signature: str) -> bool:
        """True when `signature` is `value`'s for `purpose` (compared in constant time)."""
        return hmac.compare_digest(self.sign(purpose, value).encode(), signature.encode("utf-8", "replace"))


def load_session_key(setting: SecretStr | None, path: Path) -> SessionKey:
    """The key from the settings when given, else from `path` (created on first use); ConfigError otherwise."""
    if setting is not None:
        return SessionKey(setting.get_secret_value().strip().encode())
    try:
        return SessionKey(_read(path))
    except FileNotFoundError:
        _create(path)
        return SessionKey(_read(path))


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the session key file {path}; set MARQUEE_HUB_SESSION_KEY_FILE or "
                          "MARQUEE_HUB_SESSION_KEY") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the session key file {path} may be read by other users; chmod 600 it")
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"the session key file {path} is not base64") from exc


def _create(path: Path) -> None:
    # Written whole under a temporary name, then linked into place: another process starting at the same time
    # either wins the link (and both read its key) or loses it, and never reads a half-written file.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    except OSError as exc:
        raise ConfigError(f"cannot create the session key file {path} ({exc.strerror}); set "
                          "MARQUEE_HUB_SESSION_KEY_FILE to a writable place, or MARQUEE_HUB_SESSION_KEY") from exc
    finally:
        temporary.unlink(missing_ok=True)
