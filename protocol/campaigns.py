"""Which campaign and which day parts a sale's line falls in, and which campaigns would pay on the same lines.

Pure. A line earns the bonus of one campaign at most: a bundle whose campaigns could both pay on one line
at one time is refused (`first_conflict`), so a sponsor is never billed for a bonus another also pays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache

from protocol.programme import WEEKDAYS, Campaign, CampaignMatch, DayPart

Genres = Callable[[str | None], tuple[str, ...]]


def _minutes(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:5])


def in_day_part(part: DayPart, local_time: datetime) -> bool:
    """Whether a local time falls in `part` (a part ending at or before its start runs past midnight,
    and belongs to the weekday it starts on)."""
    minute = local_time.hour * 60 + local_time.minute
    start, end = _minutes(part.start), _minutes(part.end)
    weekday = WEEKDAYS[local_time.weekday()]
    if start < end:
        return weekday in part.days and start <= minute < end
    if minute >= start:
        return weekday in part.days
    yesterday = WEEKDAYS[(local_time.weekday() - 1) % 7]
    return minute < end and yesterday in part.days


def day_parts_at(parts: Iterable[DayPart], local_time: datetime) -> frozenset[str]:
    return frozenset(part.day_part_id for part in parts if in_day_part(part, local_time))


def _folded(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, tuple):
        return _folded_tuple(values)
    return frozenset(value.casefold() for value in values)


@lru_cache(maxsize=4096)
def _folded_tuple(values: tuple[str, ...]) -> frozenset[str]:
    """A bundle's lists are tuples: folded once, not at every line of every sale."""
    return frozenset(value.casefold() for value in values)


def matches(campaign: Campaign, *, at: datetime, kind: str, film: str | None, genres: Sequence[str],
            hall: str | None, site_id: str, day_parts: frozenset[str], fmt: str | None, programme: str) -> bool:
    """Whether `campaign` pays on a line with these attributes, sold at `at`."""
    if not campaign.starts_at <= at < campaign.ends_at:
        return False
    match = campaign.match
    if kind not in match.kinds:
        return False
    if match.films and (film is None or film.casefold() not in _folded(match.films)):
        return False
    if match.genres and not _folded(genres) & _folded(match.genres):
        return False
    if match.halls and (hall is None or hall.casefold() not in _folded(match.halls)):
        return False
    if match.sites and site_id not in match.sites:
        return False
    if match.day_parts and not day_parts & frozenset(match.day_parts):
        return False
    if match.formats and (fmt is None or fmt.casefold() not in _folded(match.formats)):
        return False
    return not match.programmes or programme in match.programmes


def _meet(left: Sequence[str], right: Sequence[str]) -> bool:
    return not left or not right or bool(_folded(left) & _folded(right))


def _films_meet(left: CampaignMatch, right: CampaignMatch, genres_of: Genres) -> bool:
    if left.films and right.films and not _folded(left.films) & _folded(right.films):
        return False
    for films, other in ((left.films, right), (right.films, left)):
        if films and other.genres and not any(_folded(genres_of(film)) & _folded(other.genres) for film in films):
            return False
    return _meet(left.genres, right.genres)


def _parts_meet(left: Sequence[str], right: Sequence[str], parts: dict[str, DayPart] | None) -> bool:
    if not left or not right or set(left) & set(right):
        return True
    if parts is None:
        return False
    return any(_overlap(parts[a], parts[b]) for a in left for b in right if a in parts and b in parts)


_WEEK = 7 * 1440


def _overlap(first: DayPart, second: DayPart) -> bool:
    def spans(part: DayPart) -> list[tuple[int, int]]:  # [from, to) in minutes of the week (Monday 00:00 = 0)
        start, end = _minutes(part.start), _minutes(part.end)
        length = end - start if start < end else 24 * 60 - start + end
        found = []
        for day in part.days:
            begin = WEEKDAYS.index(day) * 1440 + start
            found.append((begin, min(begin + length, _WEEK)))
            if begin + length > _WEEK:  # Sunday night runs into Monday
                found.append((0, begin + length - _WEEK))
        return found
    return any(a < d and c < b for a, b in spans(first) for c, d in spans(second))


def first_conflict(campaigns: Sequence[Campaign], genres_of: Genres,
                   parts: dict[str, DayPart] | None = None) -> str | None:
    """A sentence naming two campaigns that could pay on one line at one time, or None."""
    for index, first in enumerate(campaigns):
        for second in campaigns[index + 1:]:
            if first.ends_at <= second.starts_at or second.ends_at <= first.starts_at:
                continue
            a, b = first.match, second.match
            if (set(a.kinds) & set(b.kinds) and _films_meet(a, b, genres_of) and _meet(a.halls, b.halls)
                    and _meet(a.sites, b.sites) and _meet(a.formats, b.formats)
                    and _meet(a.programmes, b.programmes) and _parts_meet(a.day_parts, b.day_parts, parts)):
                return (f"campaigns {first.campaign_id} and {second.campaign_id} could both pay on the same line "
                        f"between {max(first.starts_at, second.starts_at):%Y-%m-%d} and "
                        f"{min(first.ends_at, second.ends_at):%Y-%m-%d}; a line earns one campaign's bonus: "
                        "narrow one (films, halls, sites, day parts, dates)")
    return None
