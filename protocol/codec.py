"""Encoding and decoding of wire messages: compact JSON, with one error type for anything malformed."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from protocol.errors import MalformedMessage

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    """The wire form of a message: compact JSON, field aliases, unknown fields kept."""
    return message.model_dump_json(by_alias=True).encode("utf-8")


def decode(model: type[M], data: bytes | str) -> M:
    """Parse a wire message into `model`; MalformedMessage with a short reason when it does not fit."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise MalformedMessage(
            f"{model.__name__}: {exc.error_count()} error(s), first at {where or '<root>'}: {first['msg']}"
        ) from exc
