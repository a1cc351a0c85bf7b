"""The report's tables written as one CSV file (UTF-8 with a BOM, for Excel) or one XLSX workbook.

CSV: the tables one after another, each under a line with its title, blank lines between; text a spreadsheet
would run as a formula gets a leading ' (`cloud.fraud.report.safe_cell`). XLSX (openpyxl): one sheet per table,
numbers as numbers (money with its currency's decimals and code, rates as percentages), totals rows in bold.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

# openpyxl ships no type hints (types-openpyxl would add them).
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from cloud.fraud.report import safe_cell
from cloud.reports.money import places
from cloud.reports.tables import Cell, Column, Kind, Money, Table

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"
_FORMATS: dict[Kind, str] = {"int": "#,##0", "ratio": "0.00", "percent": "0.0%", "hours": "0.0"}
_BOLD = Font(bold=True)


def _money_format(money: Money) -> str:
    """`#,##0.00 [$EUR]`: the currency's decimals, its code after the amount (Excel and LibreOffice show it)."""
    decimals = places(money.currency)
    return "#,##0" + ("." + "0" * decimals if decimals else "") + f' [${money.currency}]'


def _typed(value: object, column: Column) -> tuple[object, Kind]:
    if isinstance(value, Cell):
        return value.value, value.kind
    return value, column.kind


def _text(value: object, kind: Kind) -> object:
    """A CSV cell: numbers as a spreadsheet reads them, text made safe."""
    if value is None:
        return ""
    if kind == "percent" and isinstance(value, float | int):
        return f"{value * 100:.1f}%"
    if kind == "ratio" and isinstance(value, float | int):
        return f"{value:.2f}"
    if kind == "hours" and isinstance(value, float | int):
        return f"{value:.1f}"
    if isinstance(value, Money):
        return str(value.amount)
    if isinstance(value, int | Decimal):
        return str(value)
    return safe_cell(str(value))


def report_csv(tables: Iterable[Table]) -> bytes:
    """Every table in one CSV file, UTF-8 with a byte order mark so that Excel reads its accents."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for table in tables:
        writer.writerow([safe_cell(table.title)])
        for label, value in table.info:
            writer.writerow([safe_cell(label), safe_cell(value)])
        writer.writerow([safe_cell(column.title) for column in table.columns])
        for row in [*table.rows, *table.totals]:
            writer.writerow([_text(*_typed(value, column)) for value, column in zip(row, table.columns, strict=True)])
        if table.note:
            writer.writerow([safe_cell(table.note)])
        writer.writerow([])
    return out.getvalue().encode("utf-8-sig")


def _number_format(value: object, kind: Kind) -> str | None:
    if isinstance(value, Money):
        return _money_format(value)
    return _FORMATS.get(kind) if isinstance(value, int | float | Decimal) else None


def _sheet_value(value: object) -> object:
    if isinstance(value, Money):
        return value.amount
    if value is None or isinstance(value, int | float | Decimal):
        return value
    # openpyxl writes a string starting with = as a formula: keep text text.
    return safe_cell(str(value))


def _cell(sheet: Any, value: object, kind: Kind | None = None, bold: bool = False) -> Any:
    # openpyxl writes a Decimal as a number; its type stubs leave Decimal out.
    cell = WriteOnlyCell(sheet, value=_sheet_value(value))  # type: ignore[arg-type]
    number_format = _number_format(value, kind) if kind else None
    if number_format:
        cell.number_format = number_format
    if bold:
        cell.font = _BOLD
    return cell


def report_xlsx(tables: Iterable[Table]) -> bytes:
    """Every table on a sheet of its own in one workbook (written row by row: openpyxl's write-only mode)."""
    book = Workbook(write_only=True)
    for table in tables:
        sheet = book.create_sheet(table.sheet[:31])
        # Column widths and the frozen header go before the first row in write-only mode.
        for index, column in enumerate(table.columns, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = max(12, min(40, len(column.title) + 4))
        header = len(table.info) + 3
        sheet.freeze_panes = f"A{header + 1}"
        sheet.append([_cell(sheet, table.title, bold=True)])
        for label, value in table.info:
            sheet.append([_cell(sheet, label), _cell(sheet, value)])
        sheet.append([])
        sheet.append([_cell(sheet, column.title, bold=True) for column in table.columns])
        for row, bold in [*((row, False) for row in table.rows), *((row, True) for row in table.totals)]:
            sheet.append([_cell(sheet, *_typed(value, column), bold=bold)
                          for value, column in zip(row, table.columns, strict=True)])
        if table.note:
            sheet.append([])
            sheet.append([_cell(sheet, table.note)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
