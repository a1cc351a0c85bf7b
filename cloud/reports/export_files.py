"""The transaction export's pages as file chunks: CSV (UTF-8 with a BOM, injection-safe) or JSON Lines.

One chunk per page (about a thousand rows), so a stream hands the server a few hundred kilobytes at a time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Literal

from cloud.fraud.report import safe_cell
from cloud.reports.export import COLUMNS, MONEY_COLUMNS, Row
from cloud.reports.money import amount_text

ExportFormat = Literal["csv", "jsonl"]
MEDIA_TYPES: dict[ExportFormat, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def _csv_row(row: Row) -> list[object]:
    currency = str(row.get("currency") or "")
    cells: list[object] = []
    for name in COLUMNS:
        value = row[name]
        if value is None:
            cells.append("")
        elif isinstance(value, str):
            cells.append(safe_cell(value))
        elif name in MONEY_COLUMNS and isinstance(value, int):
            cells.append(amount_text(value, currency))
        else:
            cells.append(value)
    return cells


def csv_chunks(pages: Iterable[list[Row]]) -> Iterator[bytes]:
    """The header (after a byte order mark), then one chunk per page; amounts as decimals of the currency."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield out.getvalue().encode("utf-8-sig")
    for rows in pages:
        out.seek(0)
        out.truncate()
        writer.writerows(_csv_row(row) for row in rows)
        yield out.getvalue().encode("utf-8")


def jsonl_chunks(pages: Iterable[list[Row]]) -> Iterator[bytes]:
    """One JSON object per line, one chunk per page; amounts in minor units, as the API gives them."""
    for rows in pages:
        yield "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode()


def export_chunks(pages: Iterable[list[Row]], format: ExportFormat) -> Iterator[bytes]:
    """The chunks of the file in `format`."""
    return csv_chunks(pages) if format == "csv" else jsonl_chunks(pages)
