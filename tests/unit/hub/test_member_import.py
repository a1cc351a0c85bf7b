"""The CRM export reader: columns, delimiters, dates, cards, refusals, values kept out of problems, streaming.

Every person here is made up (``example.org``/``example.test`` addresses, Ofcom drama phone numbers).
"""

from __future__ import annotations

import csv
import io
import tempfile
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.members.importer import COLUMNS, MAX_LINE, ImportRow, count_rows, read_members
from cloud.members.model import CardKind, Consent, MemberDraft
from protocol.cards import CardScheme, printed_id

TODAY = date(2026, 1, 15)
TAG32 = CardScheme()
WIEGAND24 = CardScheme(em4100="wiegand24")


def rows(text: str, scheme: CardScheme = TAG32, *, default_card_kind: CardKind | None = None) -> list[ImportRow]:
    stream = io.StringIO(text, newline="")
    return list(read_members(stream, scheme, default_card_kind=default_card_kind, today=TODAY))


def only(text: str, *, default_card_kind: CardKind | None = None) -> ImportRow:
    (row,) = rows(text, default_card_kind=default_card_kind)
    return row


def draft(text: str, *, default_card_kind: CardKind | None = None) -> MemberDraft:
    row = only(text, default_card_kind=default_card_kind)
    assert row.draft is not None, row.problems
    return row.draft


def member_code(serial: int) -> str:
    """A member code's digits (serial + Luhn check digit), as printed under the QR code."""
    digits = f"{serial:08d}"
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (1 if index % 2 else 2)
        total += value - 9 if value > 9 else value
    return digits + str(-total % 10)


GOOD = (
    "external id,name,email,phone,birthday,balance,card,card kind,consent,consent purposes,programme\n"
    "C-001,Ada Example,ada@example.org,+44 20 7946 0000,1990-05-17,120,0003887558,em4100,2021-03-04,"
    '"loyalty;marketing",default\n'
    f"C-002,Bob Sample,,,,0,{member_code(1)},member,,,\n"
)


def test_a_good_comma_file_gives_drafts() -> None:
    first, second = rows(GOOD)
    assert (first.line, first.problems, second.line, second.problems) == (2, (), 3, ())
    ada = first.draft
    assert ada is not None
    assert ada.external_id == "C-001" and ada.programme == "default" and ada.opening_balance == 120
    assert ada.profile.name == "Ada Example" and ada.profile.email == "ada@example.org"
    assert ada.profile.phone == "+44 20 7946 0000" and ada.profile.birthday == date(1990, 5, 17)
    assert ada.consent is not None and ada.consent.purposes == ("loyalty", "marketing")
    assert ada.consent.given_at == datetime(2021, 3, 4, tzinfo=UTC)
    assert [(card.kind, card.number) for card in ada.cards] == [("em4100", "0003887558")]
    assert second.draft is not None and second.draft.consent is None and second.draft.profile.phone is None


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_files_read_alike(delimiter: str) -> None:
    converted = io.StringIO()
    writer = csv.writer(converted, delimiter=delimiter, lineterminator="\n")
    writer.writerows(csv.reader(io.StringIO(GOOD)))
    assert [row.draft for row in rows(converted.getvalue())] == [row.draft for row in rows(GOOD)]


def test_a_bom_and_blank_lines_are_skipped_and_lines_keep_their_numbers() -> None:
    text = '\ufeff\nName;Card;Card kind\n\nAda Example;0003887558;em4100\n;;\n"Bob\nSample";;\nZed Placeholder;;\n'
    found = [(row.line, row.problems) for row in rows(text)]
    assert found == [(4, ()), (6, ("name: has control characters",)), (8, ())]  # a quoted newline: one record


def consent(member: MemberDraft) -> Consent:
    assert member.consent is not None
    return member.consent


ALIAS_CASES: dict[str, tuple[str, str, str, Callable[[MemberDraft], object]]] = {
    # column: (other columns the row needs, their values, a value for the column, where it lands)
    "external id": ("name", "Ada Example", "C-9", lambda member: member.external_id),
    "name": ("id", "C-9", "Ada Example", lambda member: member.profile.name),
    "first name": ("id", "C-9", "Ada", lambda member: member.profile.name),
    "last name": ("id", "C-9", "Example", lambda member: member.profile.name),
    "email": ("name", "Ada Example", "ada@example.org", lambda member: member.profile.email),
    "phone": ("name", "Ada Example", "+44 20 7946 0000", lambda member: member.profile.phone),
    "birthday": ("name", "Ada Example", "1990-04-03", lambda member: str(member.profile.birthday)),
    "balance": ("name", "Ada Example", "12", lambda member: str(member.opening_balance)),
    "card": ("card kind", "em4100", "0003887558", lambda member: member.cards[0].number),
    "card kind": ("card", member_code(3), "member", lambda member: member.cards[0].kind),
    "cards": ("name", "Ada Example", "em4100:0003887558", lambda member: f"em4100:{member.cards[0].number}"),
    "consent": ("name,purposes", "Ada Example,loyalty", "2021-03-04",
                lambda member: str(consent(member).given_at.date())),
    "consent purposes": ("name,consent", "Ada Example,2021-03-04", "marketing",
                         lambda member: consent(member).purposes[0]),
    "programme": ("name", "Ada Example", "vip", lambda member: member.programme),
}


@pytest.mark.parametrize(("header", "column"), [
    (alias.upper().replace(" ", sep), column)
    for column, aliases in COLUMNS.items() for alias in aliases for sep in (" ", "_", "-", "")
])
def test_every_alias_in_any_case_and_spacing_is_its_column(header: str, column: str) -> None:
    other, other_value, value, lands_in = ALIAS_CASES[column]
    row = only(f"{other},{header}\n{other_value},{value}\n")
    assert row.draft is not None and lands_in(row.draft) == value, row.problems


@pytest.mark.parametrize("header", ["e-mail", "Mail", "E_MAIL", "Email Address"])
def test_email_aliases_fill_the_email(header: str) -> None:
    assert draft(f"Full Name,{header}\nAda Example,ada@example.org\n").profile.email == "ada@example.org"


def test_first_and_last_names_are_joined_and_a_full_name_wins() -> None:
    text = "first name,last name,name\nAda,Example,\n,Example,\nAda,Example,Ada B. Example\n"
    assert [row.draft and row.draft.profile.name for row in rows(text)] == ["Ada Example", "Example", "Ada B. Example"]


@pytest.mark.parametrize(("text", "day"), [
    ("1990-04-03", date(1990, 4, 3)), ("03.04.1990", date(1990, 4, 3)), ("03/04/1990", date(1990, 4, 3)),
    ("3.4.1990", date(1990, 4, 3)), ("29/02/2000", date(2000, 2, 29)),
])
def test_dates_are_iso_or_day_first(text: str, day: date) -> None:
    assert draft(f"name,date of birth\nAda Example,{text}\n").profile.birthday == day


@pytest.mark.parametrize(("text", "moment"), [
    ("2021-03-04", datetime(2021, 3, 4, tzinfo=UTC)),
    ("04.03.2021", datetime(2021, 3, 4, tzinfo=UTC)),
    ("2021-03-04T10:20:30", datetime(2021, 3, 4, 10, 20, 30, tzinfo=UTC)),
    ("2021-03-04 10:20", datetime(2021, 3, 4, 10, 20, tzinfo=UTC)),
    ("2021-03-04T10:20:30+02:00", datetime(2021, 3, 4, 10, 20, 30, tzinfo=timezone(timedelta(hours=2)))),
    ("2021-03-04T10:20:30Z", datetime(2021, 3, 4, 10, 20, 30, tzinfo=UTC)),
])
def test_consent_is_a_date_or_a_datetime_naive_ones_utc(text: str, moment: datetime) -> None:
    given_at = consent(draft(f"name;consent at;purposes\nAda Example;{text};loyalty\n")).given_at
    assert given_at == moment and given_at.utcoffset() == moment.utcoffset()


def test_em4100_printed_forms_are_one_card_under_wiegand24() -> None:
    assert printed_id("em4100", "0003887558", WIEGAND24) == printed_id("em4100", "059,20934", WIEGAND24)
    text = 'name,card number,card kind\nAda Example,0003887558,em4100\nBob Sample,"059,20934",EM4100\n'
    first, second = rows(text, WIEGAND24)
    assert first.draft is not None and first.draft.cards[0].number == "0003887558"
    assert second.draft is None and second.problems == ("card: the same card as line 2",)


def test_a_cards_column_holds_kind_number_pairs() -> None:
    text = (f'name;cards\nAda Example;"em4100:0003887558;nfc:04:A2:B3:C4:D5:E6:F7 ; member:M{member_code(7)}"\n'
            f"Bob Sample;magstripe:9012 3456 78\n")
    ada, bob = rows(text)
    assert ada.draft is not None and bob.draft is not None
    assert [card.kind for card in ada.draft.cards] == ["em4100", "nfc", "member"]
    assert ada.draft.cards[1].number == "04:A2:B3:C4:D5:E6:F7"
    assert [(card.kind, card.number) for card in bob.draft.cards] == [("magstripe", "9012 3456 78")]


def test_the_same_card_twice_in_one_row_is_one_card() -> None:
    text = "name,card,card kind,cards\nAda Example,0003887558,em4100,em4100:0003887558\n"
    assert len(draft(text).cards) == 1


def test_a_card_as_read_by_a_reader_is_accepted() -> None:
    assert draft("name,cards\nAda Example,read:em4100:0003887558\n").cards[0].kind == "read"


def test_a_number_without_a_kind_needs_the_default_kind() -> None:
    text = "name,card\nAda Example,0003887558\n"
    assert only(text).problems == ("card: card kind missing",)
    assert draft(text, default_card_kind="em4100").cards[0].kind == "em4100"
    with pytest.raises(ValueError, match="default_card_kind"):
        read_members(io.StringIO(text), TAG32, default_card_kind="plastic")  # type: ignore[arg-type]


REFUSALS = [
    ("birthday", "2027-01-01", "birthday: in the future"),
    ("birthday", "1899-12-31", "birthday: before 1900"),
    ("birthday", "31.02.1990", "birthday: not a real date"),
    ("birthday", "1990/05/17", "birthday: not a date"),
    ("birthday", "17 May 1990", "birthday: not a date"),
    ("balance", "1,000", "balance: whole points only"),
    ("balance", "1.000", "balance: whole points only"),
    ("balance", "12.5", "balance: whole points only"),
    ("balance", "-3", "balance: cannot be negative"),
    ("balance", "99999999999999", "balance: too large"),
    ("balance", "1000000001", "balance: input should be less than or equal to 1000000000"),
    ("email", "ada.example.org", "email: not an e-mail address"),
    ("phone", "call me", "phone: not a phone number"),
    ("programme", "Gold Club", "programme: not a programme id"),
    ("external id", "X" * 65, "external id: string should have at most 64 characters"),
    ("card", "3887558", "card: a 125 kHz card number is printed as 10 digits"),
    ("card kind", "plastic", "card: unknown card kind"),
    ("cards", "em4100:12", "cards: a 125 kHz card number"),
    ("cards", "gold:0003887558", "cards: unknown card kind"),
    ("cards", "nfc:08A1B2C3", "cards: this card shows a random UID"),
    ("consent", "yesterday", "consent: not a date"),
    ("consent", "2021-13-01T10:00", "consent: not a real date and time"),
    ("consent", "2027-01-01", "consent: in the future"),
    ("consent", "0001-01-01T00:00+02:00", "consent: before 1900"),
    ("consent", "9999-12-31T23:59-05:00", "consent: in the future"),
    ("consent purposes", "loyalty;newsletter", "consent purposes: each is one of loyalty"),
]


@pytest.mark.parametrize(("column", "value", "problem"), REFUSALS)
def test_each_refusal_names_its_column_and_reason(column: str, value: str, problem: str) -> None:
    cells = {"name": "Ada Example", "card": "0003887558", "card kind": "em4100", "consent": "2021-01-01",
             "consent purposes": "loyalty", column: value}
    writer_out = io.StringIO()
    writer = csv.writer(writer_out, lineterminator="\n")
    writer.writerows([list(cells), list(cells.values())])
    row = only(writer_out.getvalue())
    assert row.draft is None
    assert any(found.startswith(problem) for found in row.problems), row.problems


@pytest.mark.parametrize(("text", "problem"), [
    ("name,card\n,\n,,\nAda Example,\n,0003887558\n", None),
    ("name,email\n,ada@example.org\n", "row: neither a name nor a card"),
    ("name;consent\nAda Example;2021-01-01\n", "consent: a consent date and consent purposes go together"),
    ("name;purposes\nAda Example;loyalty\n", "consent: a consent date and consent purposes go together"),
    ("name,email\nAda Example,ada@example.org,surplus\n", "row: more fields than the header names"),
    ("id,name\nC-1,Ada Example\nC-1,Bob Sample\n", "external id: the same as line 2"),
    ("name,cards\nAda Example," + ";".join(f"member:{member_code(n)}" for n in range(21)) + "\n",
     "card: tuple should have at most 20 items"),
    ("name\nAda\x07Example\n", "name: has control characters"),
])
def test_row_refusals(text: str, problem: str | None) -> None:
    found = [row for row in rows(text, default_card_kind="em4100") if row.problems]
    assert len(found) == (1 if problem else 0)
    assert not found or found[0].problems[0].startswith(problem or "")


def test_unknown_columns_are_named_once_at_line_1_and_rows_go_on() -> None:
    found = rows("Name,Tier,Notes,E-mail,,\nAda Example,gold,vip,ada@example.org,,\nBob Sample,,,,,\n")
    assert found[0] == ImportRow(1, None, ("header: unknown columns ignored: 'Tier', 'Notes'",))
    assert [(row.line, row.problems) for row in found[1:]] == [(2, ()), (3, ())]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "header: the file holds no header row"),
    ("\n\n;;\n", "header: the file holds no header row"),
    ("Ada Example,ada@example.org,0003887558\n", "header: no known column names"),
    ("name,e-mail,mail\nAda Example,ada@example.org,\n", "header: columns 2 and 3 are both email"),
    ("email,phone\nada@example.org,\n", "header: needs a name column or a card column"),
    ("name\x00\nAda Example\n", "header: the first line cannot be read"),
])
def test_a_file_that_cannot_be_read_gives_one_problem_at_line_1(text: str, problem: str) -> None:
    (row,) = rows(text)
    assert row.line == 1 and row.draft is None and row.problems[0].startswith(problem)
    assert "Ada" not in row.problems[0] and "example.org" not in row.problems[0]


def test_rows_the_csv_module_cannot_parse_are_problems_and_reading_goes_on(tmp_path: Path) -> None:
    text = ("name,card\nAda Example,\nBob\x00Sample,\n"
            f'"{"x" * (csv.field_size_limit() + 1)}",\n'
            f'{"y" * (MAX_LINE + 5)}\n'
            "Zed Placeholder,\n")
    found = [(row.line, row.problems) for row in rows(text)]
    assert found == [(2, ()), (3, ("row: holds a NUL character",)),
                     (4, ("row: a field is too long (csv.field_size_limit)",)),
                     (5, (f"row: a line longer than {MAX_LINE} characters",)), (6, ())]
    (tmp_path / "export.csv").write_text(text, encoding="utf-8")
    assert count_rows(tmp_path / "export.csv") == 5


def test_text_not_in_the_encoding_stops_with_the_callers_error_after_the_rows_before() -> None:
    data = b"name\n" + b"Ada Example\n" * 3000 + b"Bo\xe9 Sample\n" + b"Zed Placeholder\n" * 3000
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    found = read_members(stream, TAG32)
    assert next(found).draft is not None
    with pytest.raises(UnicodeDecodeError):
        list(found)


BAD_VALUES = {
    "external id": "ZZ-" + "9" * 70,
    "name": "Quentin\x01Placeholder",
    "email": "quentin.placeholder-at-example.test",
    "phone": "call 01632 960999 now",
    "birthday": "2099-07-13",
    "balance": "4.321",
    "card": "38875589",
    "card kind": "em4100",
    "cards": "nfc:08C0FFEE;member:M12345678",
    "consent": "13/31/2020",
    "consent purposes": "loyalty;sell-to-everyone",
    "programme": "Platinum Elite",
}


def test_no_problem_ever_holds_a_value_of_the_file() -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([list(BAD_VALUES), list(BAD_VALUES.values()), list(BAD_VALUES.values())])
    found = rows(out.getvalue(), WIEGAND24)
    assert len(found) == 2 and all(row.draft is None and len(row.problems) >= 8 for row in found)
    text = " ".join(" ".join(row.problems) + repr(row) for row in found)
    for value in (*BAD_VALUES.values(), "Quentin", "Placeholder", "01632", "960999", "38875589", "C0FFEE",
                  "12345678", "2099", "4.321", "sell-to", "Platinum", "quentin"):
        if value != "em4100":
            assert value not in text


MARK = "\u00a7"  # in no reason: a problem holding it would hold a value
ANY_TEXT = st.text(st.characters(categories=("L", "M", "N", "P", "S", "Z", "Cc")), max_size=12)  # no surrogates


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(
    st.sampled_from(["Ada Example", "0003887558", "2020-01-02", "12", "em4100", "loyalty", "", "9999-12-31",
                     "0001-01-01T00:00+14:00", "9999-12-31T23:59-12:00", "31.12.9999", "read:nfc:04A1"]),
    ANY_TEXT.map(lambda text: text[:3] + MARK + text[3:]),
), max_size=8), max_size=8))
def test_any_cells_give_problems_never_errors_never_values(records: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "export.csv")
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["name", "card", "card kind", "birthday", "consent", "consent purposes", "balance", "id"])
            writer.writerows(records)
        with path.open(encoding="utf-8", newline="") as stream:
            found = list(read_members(stream, WIEGAND24))
        data_rows = [row for row in found if row.line > 1]
        assert count_rows(path) == len(data_rows)
        assert [row.line for row in data_rows] == sorted({row.line for row in data_rows})
        assert all(MARK not in problem for row in found for problem in row.problems)
        assert all((row.draft is None) == bool(row.problems) for row in data_rows)


def test_20000_rows_stream_in_bounded_memory_and_count_rows_agrees(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write("Customer ID;First name;Last name;E-mail;Points;Card number;Card kind;DOB\n")
        for serial in range(20_000):
            stream.write(f"C{serial:07d};Test;Person {serial};p{serial}@example.test;{serial % 5000};"
                         f"9{serial:09d};magstripe;{1 + serial % 28:02d}.{1 + serial % 12:02d}.19{50 + serial % 50}\n")
        stream.write(f"C0000007;Test;Again;;;9{99:09d};magstripe;\n")
    assert count_rows(path) == 20_001
    good = refused = 0
    tracemalloc.start()
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            for row in read_members(stream, TAG32):
                good += row.draft is not None
                refused += row.draft is None
                last = row
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (good, refused) == (20_000, 1)
    assert set(last.problems) == {"external id: the same as line 9", "card: the same card as line 101"}
    # A file read whole would take about 2 MiB here; the table of ids and cards seen is 2 entries a row.
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB"
