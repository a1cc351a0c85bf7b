"""A low score in the feedback form becomes an alert case for its site, in the answer's transaction, so the alert
courier takes it to the site's manager (`site_alert_channels`) and HQ's channels within seconds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa

from cloud.fraud.cases import raise_alert

LOW_CODE: Final = "feedback_low"
HUB_REASONS: Final[dict[str, str]] = {LOW_CODE: "a low score in the audience feedback form"}
"""The hub's own alert codes beyond the fraud rules', with the sentence a manager reads."""
LOW_NPS: Final = 2
"""A recommendation score (0-10) at or below this is low..."""
LOW_SCORE: Final = 2
"""...and so is a 1-5 score at or below this."""


@dataclass(frozen=True, slots=True)
class Scores:
    """One answer's scores: `nps` 0-10, the others 1-5 or None when skipped."""

    nps: int
    film: int | None = None
    hall: int | None = None
    staff: int | None = None

    @property
    def low(self) -> bool:
        """True when any score is low enough for the site's manager to hear of it now."""
        return self.nps <= LOW_NPS or any(score is not None and score <= LOW_SCORE
                                          for score in (self.film, self.hall, self.staff))


def raise_low_score(conn: sa.Connection, *, answer_id: int, site_id: str, scores: Scores, film: str | None,
                    hall: str | None, device_id: str, seq: int, complaint: str | None, at: datetime) -> int:
    """Open a warning case for a low-scored answer (one case per answer; scores, film and hall, never the comment);
    returns its id."""
    parts = [f"recommend {scores.nps}/10"] + [f"{label} {score}/5" for label, score in (
        ("film", scores.film), ("hall", scores.hall), ("staff and bar", scores.staff)) if score is not None]
    about = ", ".join(part for part in (f"'{film}'" if film else None, f"hall {hall}" if hall else None) if part)
    summary = f"Low audience score at {site_id}: {', '.join(parts)}" + (f" ({about})" if about else "")
    if complaint:
        summary += f"; a complaint about {complaint.replace('_', ' ')} is open"
    figures = {"answer_id": answer_id, "nps": scores.nps, "film_score": scores.film, "hall_score": scores.hall,
               "staff_score": scores.staff, "film": film, "hall": hall, "complaint": complaint}
    return raise_alert(conn, dedupe_key=f"hub:{LOW_CODE}:{answer_id}", code=LOW_CODE, severity="warning",
                       source="hub", summary=summary, first_at=at, at=at, site_id=site_id, device_id=device_id,
                       figures={key: value for key, value in figures.items() if value is not None},
                       event_ref=(device_id, seq))
