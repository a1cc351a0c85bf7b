"""Canonical encoding: the only byte form in which events are hashed or signed.

JSON with sorted keys, no insignificant white space, UTF-8, integers only for money and points
(floats are refused so that no two encoders can disagree on a number's digits).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from protocol.errors import MalformedMessage


def _refuse_float(value: Any) -> Any:
    raise MalformedMessage(f"canonical encoding refuses a value of type {type(value).__name__}")


def _check(value: Any) -> None:
    if isinstance(value, float):
        raise MalformedMessage("canonical encoding refuses floats; use integers in minor units")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedMessage("canonical encoding needs string keys")
            _check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item)


def canonical_bytes(value: Mapping[str, Any]) -> bytes:
    """Encode a JSON-ready mapping canonically (sorted keys, compact, UTF-8)."""
    _check(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse_float
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()
