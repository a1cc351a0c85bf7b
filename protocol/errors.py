"""Errors raised by the protocol package.

    ProtocolError
    ├── MalformedMessage   a payload that is not valid JSON or does not fit its schema
    ├── TopicError         a topic that is not one of ours
    └── ChainError         an event whose hash or link does not match the chain
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error the protocol package raises."""


class MalformedMessage(ProtocolError):
    """A message that cannot be decoded or does not fit its schema."""


class TopicError(ProtocolError):
    """A topic that does not follow the `marquee/v1/...` layout."""


class ChainError(ProtocolError):
    """An event whose hash is wrong or whose prev_hash does not link to the previous event."""
