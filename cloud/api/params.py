"""Query parameter types stricter than pydantic's defaults.

pydantic's lax mode reads a date from many things: `1700000000` (a unix time), `20250314`,
`2025-W11-5`. A typo then becomes a query over the wrong days without a word, so the API takes
ISO dates (YYYY-MM-DD) only and answers anything else with 422.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MESSAGE = "expected a date as YYYY-MM-DD, e.g. 2025-03-14"


def _iso_date(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("iso_date", "not a calendar date; " + _MESSAGE) from None
    raise PydanticCustomError("iso_date", _MESSAGE)


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
"""A calendar date written YYYY-MM-DD, nothing else."""
