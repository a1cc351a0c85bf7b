"""Errors raised by the protocol package.

    ProtocolError
    ├── MalformedMessage   a payload that is not valid JSON or does not fit its schema
    ├── TopicError         a topic that is not one of ours
    ├── ChainError         an event whose hash or link does not match the chain
    └── SignatureError     a signature or a public key that does not check out
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error the protocol package raises."""


class MalformedMessage(ProtocolError):
    """A message that cannot be decoded or does not fit its schema.

    `fields` names the offending field locations (never their values), for reject records.
    """

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


class TopicError(ProtocolError):
    """A topic that does not follow the `marquee/v1/...` layout."""


class ChainError(ProtocolError):
    """An event whose hash is wrong or whose prev_hash does not link to the previous event."""


class SignatureError(ProtocolError):
    """A batch or status whose signature does not verify, or a public key that cannot be read."""
