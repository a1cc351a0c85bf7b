"""What a member is made of when HQ enrols or updates one (API, CSV import); validated, never logged.

Personal fields (name, phone, e-mail, birthday) are only ever held in memory here: the hub stores them
sealed under the member's own key (`cloud.members.vault`). Errors name the field, never its value.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.cards import PrintedKind
from protocol.directory import MEMBER_ID_PATTERN

CardKind = PrintedKind | Literal["read"]
Purpose = Literal["loyalty", "marketing", "analytics", "birthday"]
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_EMAIL = r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$"


class CardInput(BaseModel):
    """A card as a person gives it: `kind` "read" for the canonical id a reader printed
    (`marquee-edge read-cards`, e.g. ``em4100:0003887558``), else the family and the number printed on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: CardKind
    number: Annotated[str, Field(min_length=1, max_length=80, pattern=_PRINTABLE)]

    def __repr__(self) -> str:  # never the number
        return f"CardInput(kind={self.kind!r})"


class Consent(BaseModel):
    """What the member agreed to, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    given_at: datetime
    purposes: Annotated[tuple[Purpose, ...], Field(min_length=1)]

    @field_validator("given_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("given_at must carry a time zone")
        return value


class Profile(BaseModel):
    """The member's personal data: what the vault seals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)] | None = None
    phone: Annotated[str, Field(min_length=3, max_length=40, pattern=r"^\+?[0-9 ().-]+$")] | None = None
    email: Annotated[str, Field(max_length=254, pattern=_EMAIL)] | None = None
    birthday: date | None = None

    def __repr__(self) -> str:  # never the values
        return f"Profile(fields={[name for name, value in self if value is not None]})"

    __str__ = __repr__


class MemberDraft(BaseModel):
    """A member to create: profile, consent, cards, and (on import) the balance the old CRM held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    programme: Annotated[str, Field(pattern=MEMBER_ID_PATTERN)] = "default"
    profile: Profile = Profile()
    consent: Consent | None = None
    cards: Annotated[tuple[CardInput, ...], Field(max_length=20)] = ()
    external_id: Annotated[str, Field(min_length=1, max_length=64, pattern=_PRINTABLE)] | None = None
    """The member's id in the CRM it came from: a second import of the same file creates nobody twice."""
    opening_balance: Annotated[int, Field(ge=0, le=10**9)] = 0
    """Points carried over from another system (import only)."""

    def __repr__(self) -> str:
        return f"MemberDraft(programme={self.programme!r}, cards={len(self.cards)})"

    __str__ = __repr__


def normalise_phone(phone: str) -> str:
    """Digits only with a leading + kept: "+44 (0)20 7946-0000" and "+4420 79460000" search alike."""
    text = phone.strip().replace("(0)", "")
    digits = re.sub(r"\D", "", text)
    return ("+" if text.startswith("+") else "") + digits


def normalise_email(email: str) -> str:
    """Lower case, surrounding spaces removed."""
    return email.strip().lower()
