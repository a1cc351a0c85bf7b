"""Report periods: what a month, quarter and year are, in local days, across DST changes; money in files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from cloud.reports.money import amount_text, major
from cloud.reports.periods import check_kind, parse_period


@pytest.mark.parametrize(("text", "kind", "first", "last", "previous"), [
    ("2026-11", "month", date(2026, 11, 1), date(2026, 11, 30), "2026-10"),
    ("2024-02", "month", date(2024, 2, 1), date(2024, 2, 29), "2024-01"),
    ("2026-01", "month", date(2026, 1, 1), date(2026, 1, 31), "2025-12"),
    ("2026-Q4", "quarter", date(2026, 10, 1), date(2026, 12, 31), "2026-Q3"),
    ("2026-Q1", "quarter", date(2026, 1, 1), date(2026, 3, 31), "2025-Q4"),
    ("2026", "year", date(2026, 1, 1), date(2026, 12, 31), "2025"),
])
def test_a_period_is_its_local_days(text: str, kind: str, first: date, last: date, previous: str) -> None:
    period = parse_period(text)

    assert (period.kind, period.key, period.first_day, period.last_day) == (kind, text, first, last)
    assert period.previous().key == previous
    assert period.previous().last_day.toordinal() == first.toordinal() - 1


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-Q5", "2026-Q0", "1999", "2100", "26-11", "2026-1",
                                  "2026-11-01", "2026q4", " 2026", "2026\n", ""])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY, YYYY-MM or YYYY-Qn"):
        parse_period(text)


def test_a_month_across_a_dst_change_starts_and_ends_at_local_midnight() -> None:
    march = parse_period("2026-03")  # Paris moves to summer time on 29 March

    start, end = march.bounds("Europe/Paris")

    assert start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # midnight CET
    assert end == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # midnight CEST
    assert (end - start).total_seconds() == 31 * 86400 - 3600
    october_start, october_end = parse_period("2026-10").bounds("Europe/Paris")
    assert (october_end - october_start).total_seconds() == 31 * 86400 + 3600


def test_a_command_for_months_takes_months_only() -> None:
    check_kind(parse_period("2026-11"), "month")
    with pytest.raises(ValueError, match="2026-Q4 is not a month"):
        check_kind(parse_period("2026-Q4"), "month")


def test_money_in_files_has_its_currency_decimals() -> None:
    assert major(1250, "EUR") == Decimal("12.50")
    assert str(major(5, "EUR")) == "0.05"
    assert str(major(1250, "JPY")) == "1250"
    assert str(major(1250, "KWD")) == "1.250"
    assert str(major(1212.5, "EUR")) == "12.12"  # an average: half to even
    assert [amount_text(value, currency) for value, currency in ((1250, "EUR"), (5, "EUR"), (-5, "EUR"),
                                                                 (1250, "JPY"), (1250, "KWD"))] == [
        "12.50", "0.05", "-0.05", "1250", "1.250"]
