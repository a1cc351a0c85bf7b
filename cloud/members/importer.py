"""A member export of another CRM (CSV) read into drafts and refusals, a line at a time; nothing is written.

`marquee-hub members import FILE.csv` moves a chain's members and balances from its old CRM: each data row
becomes an `ImportRow`, a validated `MemberDraft` or the problems refusing it. Exports run to millions of
rows; the file is never held whole, and what is kept is 12 bytes per external id and per card (`_FirstSeen`).

The file: a header row naming the columns (`COLUMNS`; case, spaces, underscores and dashes do not count),
fields separated by ``,``, ``;`` or a tab, whichever the header line holds most of. Dates are
``YYYY-MM-DD``, ``DD.MM.YYYY`` or ``DD/MM/YYYY``, always day first (``03/04/1990`` is 3 April 1990).
Problems read ``column: reason`` and never hold a value of the file (pydantic's messages include the
input: only each error's location and message are used). Line 1 is the file itself (its header).
"""

from __future__ import annotations

import csv
import re
import secrets
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from hashlib import blake2b
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TextIO, get_args

from pydantic import ValidationError

from cloud.members.cards import read_card_id
from cloud.members.model import CardKind, MemberDraft, Purpose
from protocol.cards import PRINTED_KINDS, CardIdError, CardScheme, printed_id

COLUMNS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "external id": ("external id", "id", "member id", "customer id", "crm id", "client id"),
    "name": ("name", "full name", "member name", "customer name"),
    "first name": ("first name", "given name", "forename"),
    "last name": ("last name", "surname", "family name"),
    "email": ("email", "e-mail", "mail", "email address"),
    "phone": ("phone", "mobile", "telephone", "phone number", "mobile number", "tel"),
    "birthday": ("birthday", "birth date", "date of birth", "dob"),
    "balance": ("balance", "points", "points balance", "loyalty points"),
    "card": ("card", "card number", "card no"),
    "card kind": ("card kind",),
    "cards": ("cards",),
    "consent": ("consent", "consent date", "consent at", "consent given"),
    "consent purposes": ("consent purposes", "purposes"),
    "programme": ("programme", "program"),
})
"""Each column the importer reads (the name its problems use) and the header names taken for it."""

CARD_KINDS: Final[tuple[CardKind, ...]] = (*PRINTED_KINDS, "read")
MAX_LINE: Final = 1 << 20
"""Characters in one physical line: a longer one is refused, never held (a file without newlines)."""

_DELIMITERS = (",", ";", "\t")
_PURPOSES: tuple[str, ...] = get_args(Purpose)
_NAME_OR_CARD = frozenset({"name", "first name", "last name", "card", "cards"})
_DATE_FORMS = (re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})"),
               re.compile(r"(?P<d>[0-9]{1,2})\.(?P<m>[0-9]{1,2})\.(?P<y>[0-9]{4})"),
               re.compile(r"(?P<d>[0-9]{1,2})/(?P<m>[0-9]{1,2})/(?P<y>[0-9]{4})"))
_LIST, _PURPOSE_LIST = re.compile(r"[;|]"), re.compile(r"[;,|\s]+")
_ISO_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
_FIELD_COLUMNS = {"given_at": "consent", "purposes": "consent purposes", "external_id": "external id",
                  "opening_balance": "balance", "cards": "card", "kind": "card", "number": "card"}
_PATTERN_REASONS = {"name": "has control characters", "external id": "has control characters",
                    "phone": "not a phone number (digits, spaces and + ( ) . - only)",
                    "email": "not an e-mail address", "programme": "not a programme id (a-z, 0-9, _ and -)"}


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name.lower())


_BY_KEY = {_key(alias): column for column, aliases in COLUMNS.items() for alias in aliases}


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One data row (or, at line 1, the file itself): its draft when valid, else the problems refusing it."""

    line: int
    draft: MemberDraft | None
    problems: tuple[str, ...]


def read_members(stream: TextIO, scheme: CardScheme, *, default_card_kind: CardKind | None = None,
                 today: date | None = None) -> Iterator[ImportRow]:
    """Each row of a CRM export, in file order, as an `ImportRow`; the caller opens the file (``newline=""``)
    and sees its UnicodeDecodeError (a wrong encoding is the file's fault, not a row's).

    `default_card_kind`: the kind of a card number given without one (else the row is refused);
    `today` (UTC, default now) bounds birthdays and consent dates.
    """
    if default_card_kind is not None and default_card_kind not in CARD_KINDS:
        raise ValueError(f"default_card_kind is one of {', '.join(CARD_KINDS)}")
    return _read(stream, scheme, default_card_kind, today or datetime.now(UTC).date())


def count_rows(path: Path, *, encoding: str = "utf-8") -> int:
    """The number of data rows `read_members` will give for the file (for a progress bar); nothing validated."""
    with path.open(encoding=encoding, errors="replace", newline="") as stream:
        lines = _Lines(stream)
        try:
            delimiter, _ = _header(lines)
        except _Problem:
            return 0
        return sum(1 for _ in _records(lines, delimiter))


# ------------------------------------------------------------------ the file


class _Problem(Exception):
    """A file, line or cell that cannot be read; the message is the problem or reason, never a value."""


class _Lines:
    """The stream's physical lines, counted, the BOM taken off the first; a line longer than MAX_LINE or
    holding a NUL is skipped whole and raised as _Problem. A class, not a generator: it goes on after."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.count = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._stream.readline(MAX_LINE + 1)
        if not line:
            raise StopIteration
        self.count += 1
        if self.count == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if len(line) > MAX_LINE and line[-1] not in "\r\n":
            while (rest := self._stream.readline(MAX_LINE)) and rest[-1] not in "\r\n":
                pass
            raise _Problem(f"row: a line longer than {MAX_LINE} characters")
        if "\x00" in line:
            raise _Problem("row: holds a NUL character")
        return line


def _header(lines: _Lines) -> tuple[str, list[str]]:
    """The delimiter and the column names, from the first line that is not blank."""
    try:
        for line in lines:
            if line.strip().strip(",;"):
                delimiter = max(_DELIMITERS, key=line.count)  # a tie (or none) is a comma
                return delimiter, next(csv.reader([line], delimiter=delimiter))
    except (_Problem, csv.Error) as exc:
        raise _Problem("header: the first line cannot be read; nothing was read") from exc
    raise _Problem("header: the file holds no header row; nothing was read")


def _records(lines: _Lines, delimiter: str) -> Iterator[tuple[int, list[str] | str]]:
    """(line, fields) of each record that is not blank, or (line, problem) when it cannot be parsed."""
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start = lines.count + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _Problem as exc:
            yield start, str(exc)
        except csv.Error as exc:  # its messages hold no data, but ours are the ones promised
            yield start, "row: a field is too long (csv.field_size_limit)" if "field larger" in str(exc) else (
                "row: not valid CSV")
        else:
            if any(field.strip() for field in fields):
                yield start, fields


def _columns(names: list[str]) -> tuple[dict[str, int], list[str]]:
    """Each known column's position, and the unknown ones (for the notice); _Problem when unusable."""
    while names and not names[-1].strip():  # spreadsheets pad the header with empty cells
        names.pop()
    positions: dict[str, int] = {}
    unknown: list[str] = []
    for position, name in enumerate(names):
        column = _BY_KEY.get(_key(name))
        if column is None:
            unknown.append(repr(name.strip()[:40]) if name.strip() else f"column {position + 1} (no name)")
        elif column in positions:
            raise _Problem(f"header: columns {positions[column] + 1} and {position + 1} are both {column}; "
                           "nothing was read")
        else:
            positions[column] = position
    if not positions:  # no names said: a file without its header starts with somebody's data
        raise _Problem("header: no known column names (is the header row missing?); nothing was read")
    if not positions.keys() & _NAME_OR_CARD:
        raise _Problem("header: needs a name column or a card column; nothing was read")
    return positions, unknown


def _read(stream: TextIO, scheme: CardScheme, default_kind: CardKind | None, today: date) -> Iterator[ImportRow]:
    lines = _Lines(stream)
    try:
        delimiter, names = _header(lines)
        positions, unknown = _columns(names)
    except _Problem as exc:
        yield ImportRow(1, None, (str(exc),))
        return
    if unknown:
        yield ImportRow(1, None, (f"header: unknown columns ignored: {', '.join(unknown)}",))
    rows = _Rows(positions, len(names), scheme, default_kind, today)
    for line, record in _records(lines, delimiter):
        yield ImportRow(line, None, (record,)) if isinstance(record, str) else rows.row(line, record)


# ------------------------------------------------------------------ one row


class _FirstSeen:
    """The line of the first row that held each key, in 12 bytes a slot (a dict of str takes some 150 a key):
    a keyed 64-bit digest and the line, open addressing. Two keys sharing a digest (odds of a few in a
    million at ten million keys) would refuse a row wrongly, never accept one."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(16)  # a card's digest says nothing of its number
        self._digests, self._lines = array("Q", [0]) * 1024, array("I", [0]) * 1024
        self._used = 0

    def first(self, text: str, line: int) -> int | None:
        """The line that held `text` first; None (and `line` kept as its first) when none did."""
        data = text.encode("utf-8", "surrogatepass")
        digest = int.from_bytes(blake2b(data, digest_size=8, key=self._key).digest()) or 1
        slot = self._place(digest)
        if self._digests[slot]:
            return self._lines[slot]
        self._digests[slot], self._lines[slot] = digest, line
        self._used += 1
        if self._used * 5 > len(self._digests) * 4:
            self._grow()
        return None

    def _place(self, digest: int) -> int:
        mask = len(self._digests) - 1
        slot = digest & mask
        while (held := self._digests[slot]) and held != digest:
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        old = zip(self._digests, self._lines, strict=True)
        size = len(self._digests) * 2
        self._digests, self._lines = array("Q", [0]) * size, array("I", [0]) * size
        for digest, line in old:
            if digest:
                slot = self._place(digest)
                self._digests[slot], self._lines[slot] = digest, line


class _Rows:
    """Turns each record into an ImportRow, remembering external ids and cards across rows."""

    def __init__(self, positions: dict[str, int], width: int, scheme: CardScheme, default_kind: CardKind | None,
                 today: date) -> None:
        self._positions, self._width = positions, width
        self._scheme, self._default_kind, self._today = scheme, default_kind, today
        self._ids, self._cards = _FirstSeen(), _FirstSeen()
        self._readers: tuple[tuple[str, Callable[[str], Any]], ...] = (
            ("birthday", self._birthday), ("balance", _points), ("consent", self._consent_at),
            ("consent purposes", _purposes))

    def row(self, line: int, fields: list[str]) -> ImportRow:
        if len(fields) > self._width and any(field.strip() for field in fields[self._width:]):
            return ImportRow(line, None, ("row: more fields than the header names",))
        cell = {column: fields[at].strip() if at < len(fields) else "" for column, at in self._positions.items()}
        problems: list[str] = []
        value: dict[str, Any] = {}
        for column, read in self._readers:
            if cell.get(column):
                try:
                    value[column] = read(cell[column])
                except _Problem as exc:
                    problems.append(f"{column}: {exc}")
        if bool(cell.get("consent")) != bool(cell.get("consent purposes")):
            problems.append("consent: a consent date and consent purposes go together")
        name = cell.get("name") or " ".join(filter(None, (cell.get("first name"), cell.get("last name"))))
        profile = {"name": name, "phone": cell.get("phone"), "email": cell.get("email"),
                   "birthday": value.get("birthday")}
        data: dict[str, Any] = {"profile": {field: given for field, given in profile.items() if given},
                                "cards": self._cards_of(cell, line, problems),
                                "opening_balance": value.get("balance", 0)}
        if "consent" in value and "consent purposes" in value:
            data["consent"] = {"given_at": value["consent"], "purposes": value["consent purposes"]}
        if cell.get("programme"):
            data["programme"] = cell["programme"]
        if external_id := cell.get("external id"):
            data["external_id"] = external_id
            if (first := self._ids.first(external_id, line)) is not None:
                problems.append(f"external id: the same as line {first}")
        if not name and not data["cards"]:
            problems.append("row: neither a name nor a card")
        try:
            draft: MemberDraft | None = MemberDraft.model_validate(data)
        except ValidationError as exc:
            draft = None
            problems.extend(_reasons(exc))
        return ImportRow(line, None if problems else draft, tuple(problems))

    def _birthday(self, text: str) -> date:
        day = _date(text)
        if not date(1900, 1, 1) <= day <= self._today:
            raise _Problem("in the future" if day > self._today else "before 1900")
        return day

    def _consent_at(self, text: str) -> datetime:
        moment = _moment(text)  # a day's grace: a consent given today somewhere east of UTC
        if not datetime(1900, 1, 1, tzinfo=UTC) <= moment < datetime.combine(self._today + timedelta(2), time(), UTC):
            raise _Problem("before 1900" if moment.year < 1901 else "in the future")
        return moment

    def _cards_of(self, cell: dict[str, str], line: int, problems: list[str]) -> list[dict[str, str]]:
        given: list[tuple[str, str, str]] = []  # column, kind, number
        if cell.get("card"):
            given.append(("card", cell.get("card kind", ""), cell["card"]))
        for item in filter(None, map(str.strip, _LIST.split(cell.get("cards") or ""))):
            named, colon, number = item.partition(":")
            given.append(("cards", named, number) if colon else ("cards", "", item))
        cards: list[dict[str, str]] = []
        held: set[str] = set()
        for column, kind_text, number in given:
            kind = kind_text.strip().lower() or self._default_kind
            if kind is None:
                problems.append(f"{column}: card kind missing")
                continue
            if kind not in CARD_KINDS:
                problems.append(f"{column}: unknown card kind; one of {', '.join(CARD_KINDS)}")
                continue
            try:
                card = read_card_id(number, self._scheme) if kind == "read" else printed_id(kind, number, self._scheme)
            except CardIdError as exc:
                problems.append(f"{column}: {exc}")
                continue
            if card.text in held:  # the same card twice in a row (card and cards): one card
                continue
            held.add(card.text)
            if (first := self._cards.first(card.text, line)) is not None:
                problems.append(f"{column}: the same card as line {first}")
            cards.append({"kind": kind, "number": number.strip()})
        return cards


def _date(text: str) -> date:
    for form in _DATE_FORMS:
        if match := form.fullmatch(text):
            try:
                return date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                raise _Problem("not a real date") from None
    raise _Problem("not a date: YYYY-MM-DD, DD.MM.YYYY or DD/MM/YYYY (day first)")


def _moment(text: str) -> datetime:
    """A date (midnight UTC) or an ISO date and time; one without a zone is UTC."""
    if not _ISO_MOMENT.match(text):
        day = _date(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Problem("not a real date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _points(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _Problem("cannot be negative" if text[:1] == "-" and text[1:2].isdigit() else
                       "whole points only, without thousands separators or decimals")
    if len(text) > 13:  # and int() of thousands of digits is slow
        raise _Problem("too large")
    return int(text)


def _purposes(text: str) -> tuple[str, ...]:
    parts = [part for part in _PURPOSE_LIST.split(text.lower()) if part]
    if any(part not in _PURPOSES for part in parts):
        raise _Problem(f"each is one of {', '.join(_PURPOSES)}")
    return tuple(dict.fromkeys(parts))


def _reasons(exc: ValidationError) -> list[str]:
    """``column: reason`` for each error, from its location and message only: never its input."""
    reasons = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        field = next((part for part in reversed(error["loc"]) if isinstance(part, str)), "row")
        column = _FIELD_COLUMNS.get(field, field)
        if error["type"] == "string_pattern_mismatch":
            reasons.append(f"{column}: {_PATTERN_REASONS.get(column, 'not in the expected form')}")
        else:
            reasons.append(f"{column}: {error['msg'][:1].lower()}{error['msg'][1:]}")
    return reasons
