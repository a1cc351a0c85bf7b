"""The Net Promoter Score and the form's averages, from the rollup kept as answers are stored (`nps_daily`).

NPS: of the answers to "how likely are you to recommend us" (0-10), the percentage of promoters (9-10) less
the percentage of detractors (0-6); passives (7-8) count in the answers only. From -100 to 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import sqlalchemy as sa

from cloud.db.dialect import upsert_add
from cloud.db.feedback_tables import nps_daily
from cloud.feedback.alerts import Scores

Group = Literal["site", "film", "hall", "day"]
SUMS = ("answers", "promoters", "passives", "detractors", "film_sum", "film_count", "hall_sum", "hall_count",
        "staff_sum", "staff_count")


@dataclass(frozen=True, slots=True)
class NpsRow:
    """The answers of one key (a site, a film, a hall `<site>/<hall>`, a local day) and what they say."""

    key: str
    answers: int
    promoters: int
    passives: int
    detractors: int
    film_sum: int
    film_count: int
    hall_sum: int
    hall_count: int
    staff_sum: int
    staff_count: int

    @property
    def nps(self) -> float:
        """Promoters' percentage less detractors', one decimal (0 without answers)."""
        return round(100 * (self.promoters - self.detractors) / self.answers, 1) if self.answers else 0.0

    def average(self, question: Literal["film", "hall", "staff"]) -> float | None:
        """The mean of a 1-5 question, two decimals; None when nobody answered it."""
        total, count = getattr(self, f"{question}_sum"), getattr(self, f"{question}_count")
        return round(total / count, 2) if count else None


def add_answer(conn: sa.Connection, *, site_id: str, day: date, film: str | None, hall: str | None,
               scores: Scores) -> None:
    """Count one answer in the rollup (in the answer's transaction)."""
    row = {"site_id": site_id, "day": day, "film": film or "", "hall": hall or "", "answers": 1,
           "promoters": int(scores.nps >= 9), "passives": int(7 <= scores.nps <= 8),
           "detractors": int(scores.nps <= 6)}
    for question, score in (("film", scores.film), ("hall", scores.hall), ("staff", scores.staff)):
        row[f"{question}_sum"], row[f"{question}_count"] = (score, 1) if score is not None else (0, 0)
    upsert_add(conn, nps_daily, [row], key=("site_id", "day", "film", "hall"), add=SUMS)


def nps_by(conn: sa.Connection, *, group: Group, sites: frozenset[str] | None, start: date | None = None,
           end: date | None = None) -> list[NpsRow]:
    """The rollup's sums per key over the local days [start, end] (both included) at `sites` (None: every site),
    sorted by key. By film or hall, answers about no film or hall are left out; a hall is `<site>/<hall>`."""
    c = nps_daily.c
    key: sa.ColumnElement[object] = {"site": c.site_id, "film": c.film, "hall": c.site_id + "/" + c.hall,
                                     "day": c.day}[group]
    query = sa.select(key.label("key"), *[sa.func.sum(c[name]).label(name) for name in SUMS])
    if sites is not None:
        query = query.where(c.site_id.in_(sorted(sites)))
    if start is not None:
        query = query.where(c.day >= start)
    if end is not None:
        query = query.where(c.day <= end)
    if group == "film":
        query = query.where(c.film != "")
    elif group == "hall":
        query = query.where(c.hall != "")
    rows = conn.execute(query.group_by(key).order_by(key)).all()
    return [NpsRow(key=row.key.isoformat() if isinstance(row.key, date) else str(row.key),
                   **{name: int(getattr(row, name) or 0) for name in SUMS}) for row in rows]
