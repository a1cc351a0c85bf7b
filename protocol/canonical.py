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


_SCALARS = (str, int, bool, type(None))


def _check(value: Any) -> None:
    # Exact type tests first: this walk runs for every event hashed, on both sides (isinstance on the
    # Mapping ABC made it the larger half of the hub's ingest time).
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is dict or isinstance(item, Mapping):
            for key, child in item.items():
                if type(key) is not str:
                    raise MalformedMessage("canonical encoding needs string keys")
                if type(child) not in _SCALARS:
                    stack.append(child)
        elif kind is list or kind is tuple:
            stack.extend(child for child in item if type(child) not in _SCALARS)
        elif isinstance(item, float):
            raise MalformedMessage("canonical encoding refuses floats; use integers in minor units")


def canonical_bytes(value: Mapping[str, Any]) -> bytes:
    """Encode a JSON-ready mapping canonically (sorted keys, compact, UTF-8)."""
    _check(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse_float
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()
