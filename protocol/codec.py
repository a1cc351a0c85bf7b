"""Encoding and decoding of wire messages: compact JSON, with one error type for anything malformed.

Validation errors are described by field location and message only: pydantic's own text repeats the
input values, which may hold a card number or a name, and must never reach a log or a reject record.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, TypeVar

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
        raise invalid(model, exc) from exc


def validate(model: type[M], data: Any) -> M:
    """Like `decode` for an already parsed mapping (an event's payload, say)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(model, exc) from exc


def invalid(model: type[BaseModel], exc: ValidationError) -> MalformedMessage:
    """A MalformedMessage naming where `exc` found faults and what they were, without any input value."""
    fields = safe_locations(model, exc)
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first_msg = errors[0]["msg"] if errors else "invalid"
    where = fields[0] if fields else "<root>"
    return MalformedMessage(
        f"{model.__name__}: {exc.error_count()} error(s), first at {where}: {first_msg}", fields=fields
    )


def safe_locations(model: type[BaseModel], exc: ValidationError) -> tuple[str, ...]:
    """Each error's location as `a.b.0.c`; a part that is not a field name of the schema (a key of a
    free-form mapping, which the sender chose) is shown as `*`."""
    known = _field_names(model)
    locations = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        parts = [
            str(part) if isinstance(part, int) or part in known else "*" for part in error.get("loc", ())
        ]
        locations.append(".".join(parts) or "<root>")
    return tuple(dict.fromkeys(locations))


@functools.cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending: list[Any] = [model]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            for name, info in item.model_fields.items():
                names.add(name)
                if info.alias:
                    names.add(info.alias)
                pending.append(info.annotation)
        elif isinstance(item, types.UnionType) or typing.get_origin(item) is not None:
            pending.extend(typing.get_args(item))
    # pydantic names the branch of a union or a tagged type in the location; these are ours, not input.
    names.update({"function-after", "function-before", "function-plain", "function-wrap", "none", "str", "int"})
    return frozenset(names)
