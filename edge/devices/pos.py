"""The POS line protocol: STX payload ETX LRC frames (PP791 style) carrying JSON sale requests and answers.

Pure and incremental. The vendor-facing description, with worked examples, is docs/pos-protocol.md.
The parser tells faults apart by `FrameError.kind`; which of them earn a NAK is the agent's rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import ValidationError

from edge.devices.pos_messages import (
    ID_PATTERN,
    OPTIONAL_LOYALTY,
    SALE_ID_PATTERN,
    Authorisation,
    CancelRequest,
    FeedbackLine,
    FraudLine,
    Loyalty,
    PosRequest,
    RedeemRequest,
    Released,
    SaleAnswer,
    SaleItem,
    SaleRequest,
    mask_card_id,
)
from edge.devices.pos_staff import (
    STAFF_REQUESTS,
    ApproveRequest,
    DrawerRequest,
    OverrideRequest,
    RefundRequest,
    SignInRequest,
    SignOutRequest,
    StaffAnswer,
    StaffRequest,
    VoidRequest,
)
from edge.errors import FrameError, PosRequestError

__all__ = [  # the messages are used through this module, beside the framing
    "ID_PATTERN", "SALE_ID_PATTERN", "Authorisation", "CancelRequest", "Loyalty", "PosRequest", "RedeemRequest",
    "Released", "SaleAnswer", "SaleItem", "SaleRequest", "mask_card_id", "ACK", "EOT", "ETX", "NAK", "STX",
    "MAX_PAYLOAD", "PosControl", "PosFrame", "PosFrameParser", "encode_answer", "encode_frame", "encode_request",
    "lrc", "parse_answer", "parse_box_message", "parse_request", "AnyRequest", "BoxMessage", "StaffAnswer",
    "StaffRequest", "STAFF_REQUESTS", "FraudLine", "ApproveRequest", "DrawerRequest", "OverrideRequest",
    "RefundRequest", "SignInRequest", "SignOutRequest", "VoidRequest", "FeedbackLine",
]

AnyRequest = PosRequest | StaffRequest
BoxMessage = SaleAnswer | Authorisation | Released | StaffAnswer

STX = 0x02
ETX = 0x03
EOT = 0x04
ACK = 0x06
NAK = 0x15
MAX_PAYLOAD = 4096
_CONTROL = re.compile(rb"[\x00-\x1f]")  # every byte the payload state acts on is below 0x20 (STX, ETX...)



# ---------------------------------------------------------------- framing


@dataclass(frozen=True, slots=True)
class PosFrame:
    """A frame whose LRC checked out; `payload` is the bytes between STX and ETX."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PosControl:
    """A bare ACK (0x06), NAK (0x15) or EOT (0x04, a till giving up on a sale) seen between frames."""

    byte: int

    @property
    def is_nak(self) -> bool:
        return self.byte == NAK


def lrc(data: bytes) -> int:
    """XOR of `data`; for a frame, pass payload + ETX."""
    # Folded as one integer, halves XORed together: a few big-int steps instead of a loop per byte.
    value, width = int.from_bytes(data, "little"), len(data)
    while width > 1:
        half = (width + 1) // 2
        value = (value & ((1 << (8 * half)) - 1)) ^ (value >> (8 * half))
        width = half
    return value & 0xFF


def encode_frame(payload: bytes) -> bytes:
    """STX + payload + ETX + LRC; ValueError for a payload the protocol does not allow."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if any(byte < 0x20 for byte in payload):
        raise ValueError("payload contains a control byte (below 0x20)")
    body = payload + bytes([ETX])
    return bytes([STX]) + body + bytes([lrc(body)])


class PosFrameParser:
    """Bytes in, `PosFrame`s, `PosControl`s and `FrameError`s out; never raises, holds at most 4096 bytes.

    Error kinds: "checksum" (a complete frame with a wrong LRC: the only fault worth a resend),
    "truncated" (a new STX cut the frame), "format" (a control byte in the payload), "length" (payload
    over 4096 bytes), "garbage" (bytes between frames), "timeout" (a partial frame dropped by `flush`).
    """

    # _DISCARD: inside a frame already reported as broken, up to its ETX; _DISCARD_LRC: that frame's LRC.
    _IDLE, _PAYLOAD, _LRC, _DISCARD, _DISCARD_LRC = range(5)

    def __init__(self) -> None:
        self._state = self._IDLE
        self._payload = bytearray()
        # True while skipping a run of bytes between frames already reported (one error per run).
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete, STX and ETX included (at most MAX_PAYLOAD + 2)."""
        if self._state == self._PAYLOAD:
            # Counting STX makes a lone STX visible as pending, so a silence can drop it too.
            return 1 + len(self._payload)
        if self._state == self._LRC:
            return 2 + len(self._payload)
        return 0

    def flush(self) -> FrameError | None:
        """The line went silent: drop any partial frame ("timeout" error if one was dropped) and start afresh."""
        held = self.pending
        # A dropped frame's tail is forgotten too: after silence the next byte may be a new frame's STX,
        # which must not be swallowed as the LRC of a frame whose end was lost.
        self._reset(self._IDLE)
        self._skipping = False
        return FrameError("timeout", f"partial frame of {held} bytes dropped after silence") if held else None

    def feed(self, data: bytes) -> list[PosFrame | FrameError | PosControl]:
        """Consume `data` and return what it completed, in order."""
        out: list[PosFrame | FrameError | PosControl] = []
        index, size = 0, len(data)
        while index < size:
            state = self._state
            if state == self._PAYLOAD:
                # Printable payload bytes in one slice, up to the next control byte or the size limit.
                found = _CONTROL.search(data, index)
                stop = min(found.start() if found else size, index + MAX_PAYLOAD + 1 - len(self._payload))
                if stop > index:
                    self._payload += data[index:stop]
                    index = stop
                    if len(self._payload) > MAX_PAYLOAD:
                        out.append(FrameError("length", f"payload longer than {MAX_PAYLOAD} bytes"))
                        self._reset(self._DISCARD)
                    continue
            byte = data[index]
            index += 1
            if state == self._LRC:
                # Any value is a valid LRC, STX included, so this check comes first.
                body = bytes(self._payload) + bytes([ETX])
                if lrc(body) == byte:
                    out.append(PosFrame(bytes(self._payload)))
                else:
                    out.append(FrameError("checksum", f"LRC 0x{byte:02X}, computed 0x{lrc(body):02X}"))
                self._reset(self._IDLE)
            elif state == self._DISCARD_LRC:
                # The LRC of a frame already dropped: whatever its value (a NAK, an STX), it is not a
                # control byte of its own.
                self._reset(self._IDLE)
            elif byte == STX:
                if state == self._PAYLOAD:
                    out.append(FrameError("truncated", f"STX after {len(self._payload)} payload bytes"))
                self._reset(self._PAYLOAD)
                self._skipping = False
            elif state == self._DISCARD:
                if byte == ETX:
                    self._state = self._DISCARD_LRC
            elif state == self._IDLE:
                if byte in (ACK, NAK, EOT):
                    out.append(PosControl(byte))
                    self._skipping = False
                elif not self._skipping:
                    out.append(FrameError("garbage", "bytes outside a frame"))
                    self._skipping = True
            elif byte == ETX:
                self._state = self._LRC
            else:  # a control byte in the payload (printable ones were taken above)
                out.append(FrameError("format", f"control byte 0x{byte:02X} in payload"))
                self._reset(self._DISCARD)
        return out

    def _reset(self, state: int) -> None:
        self._payload.clear()
        self._state = state



# ---------------------------------------------------------------- messages


def _reason(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "request"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


_REQUESTS: dict[str, type[AnyRequest]] = {
    "sale": SaleRequest, "redeem": RedeemRequest, "cancel": CancelRequest,
    **{model.model_fields["type"].default: model for model in STAFF_REQUESTS},
}


def parse_request(payload: bytes) -> AnyRequest:
    """Validate a frame's payload as a till's request (sale, redeem, cancel; v1.3 staff requests); PosRequestError
    with a short reason."""
    if len(payload) > MAX_PAYLOAD:
        raise PosRequestError(f"request of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if not payload:
        raise PosRequestError("empty request: no payload between STX and ETX")
    try:
        document = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PosRequestError("request is not UTF-8") from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise PosRequestError("request is not JSON") from exc
    if not isinstance(document, dict):
        raise PosRequestError("request is not a JSON object")
    model = _REQUESTS.get(document.get("type"))  # type: ignore[arg-type]
    if model is None:
        raise PosRequestError(f"unknown request type {str(document.get('type'))[:20]!r}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise PosRequestError(_reason(exc)) from exc


def encode_request(request: AnyRequest) -> bytes:
    """A full frame carrying `request` (what a till sends)."""
    return encode_frame(request.model_dump_json(exclude_none=True).encode("utf-8"))


def encode_answer(answer: BoxMessage) -> bytes:
    """A full frame carrying `answer` (what the box sends back); a v1 answer stays exactly v1."""
    if isinstance(answer, StaffAnswer):
        return encode_frame(answer.model_dump_json(exclude_none=True).encode("utf-8"))
    exclude: dict[str, object] = {}
    if isinstance(answer, SaleAnswer | Authorisation) and answer.fraud is None:
        exclude["fraud"] = True  # v1.3: only when a fraud rule fired for a till that asked
    if isinstance(answer, SaleAnswer) and answer.feedback is None:
        exclude["feedback"] = True  # v1.4: only to a till that asked, for a sale with tickets
    if isinstance(answer, SaleAnswer) and answer.loyalty is not None:
        # A v1.2 answer (it has `earned_by`) shows every v1.2 field, null ones too; older ones none of them.
        v12 = answer.loyalty.earned_by is not None
        absent = {name for name in OPTIONAL_LOYALTY if getattr(answer.loyalty, name) is None
                  and (name == "redeemed" or not v12)}
        if absent:
            exclude["loyalty"] = absent
    return encode_frame(answer.model_dump_json(exclude=exclude or None).encode("utf-8"))  # type: ignore[arg-type]


def parse_box_message(payload: bytes) -> BoxMessage:
    """Any message the box sends (the till's side): by its `type`; PosRequestError otherwise."""
    try:
        kind = json.loads(payload).get("type")
    except (ValueError, AttributeError, RecursionError) as exc:
        raise PosRequestError("answer is not a JSON object") from exc
    model = {"answer": SaleAnswer, "authorisation": Authorisation, "released": Released,
             "staff": StaffAnswer}.get(kind)
    if model is None:
        raise PosRequestError(f"unknown answer type {str(kind)[:20]!r}")
    try:
        return model.model_validate_json(payload)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        raise PosRequestError(_reason(exc)) from exc


def parse_answer(payload: bytes) -> SaleAnswer:
    """Validate a frame's payload as a SaleAnswer (the till's side); PosRequestError otherwise."""
    try:
        return SaleAnswer.model_validate_json(payload)
    except ValidationError as exc:
        raise PosRequestError(_reason(exc)) from exc
