"""Errors raised by the edge agent.

    EdgeError
    ├── ConfigError        the configuration file or environment is unusable
    ├── DeviceError        a serial device cannot be opened, read or written
    │   └── FrameError     bytes on a line that do not form a valid frame (reported, never fatal)
    ├── PosRequestError    a well-framed POS message whose content is not a valid request
    ├── StoreError         the journal or its keys cannot be read or written
    │   ├── KeyFileError   the device master key is missing, unreadable or malformed
    │   └── UnreadableRow  one journal row does not open (altered on disk, or sealed under another key)
    └── SyncError          the MQTT link cannot be set up
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of every error the edge agent raises."""


class ConfigError(EdgeError):
    """The configuration is unusable; the message says which setting and why."""


class DeviceError(EdgeError):
    """A serial device failed (opening, reading or writing)."""


class FrameError(DeviceError):
    """Bytes that do not form a valid frame; `kind` names the fault (checksum, length, garbage, ...).

    `data` holds the offending bytes (at most `MAX_DATA`), for a technician's tool; a parser whose bytes
    may carry a card number masks them first. `str()` never shows them, so logging an error is safe.
    """

    MAX_DATA = 64

    def __init__(self, kind: str, detail: str = "", data: bytes = b"") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.data = bytes(data[: self.MAX_DATA])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrameError) and (self.kind, self.detail, self.data) == (
            other.kind, other.detail, other.data)

    def __hash__(self) -> int:
        return hash((self.kind, self.detail, self.data))


class PosRequestError(EdgeError):
    """A POS frame arrived intact but its content is not a request we understand."""


class StoreError(EdgeError):
    """The journal or its keys failed."""


class KeyFileError(StoreError):
    """The device master key file is missing, unreadable or malformed."""


class UnreadableRow(StoreError):
    """One journal row does not open: the rest of the journal works (the row is quarantined)."""


class SyncError(EdgeError):
    """The MQTT link failed to set up."""
