"""Campaigns and day parts: what a campaign pays on, when, and which pairs of campaigns a bundle refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.calendar import local
from protocol.campaigns import in_day_part, matches
from protocol.programme import Campaign, DayPart
from tests.unit.protocol.factories import PARIS, paris, rules_bundle, sell, ticket

MARCH = {"starts_at": "2026-03-01T00:00:00Z", "ends_at": "2026-04-01T00:00:00Z"}
APRIL = {"starts_at": "2026-04-01T00:00:00Z", "ends_at": "2026-05-01T00:00:00Z"}
PARTS: list[dict[str, Any]] = [
    {"day_part_id": "matinee", "start": "10:00", "end": "13:00"},
    {"day_part_id": "afternoon", "start": "12:00", "end": "15:00"},
    {"day_part_id": "evening", "start": "18:00", "end": "22:00"},
    {"day_part_id": "late", "start": "22:00", "end": "02:00", "days": ["fri", "sat"]},
    {"day_part_id": "blink", "start": "10:14", "end": "10:16"},
    {"day_part_id": "wink", "start": "10:15", "end": "10:17"},
    {"day_part_id": "early", "start": "10:00", "end": "10:05"},
    {"day_part_id": "after", "start": "10:05", "end": "10:20"},
]
FILMS = [{"title": "Harbour of Glass", "genres": ["drama"], "distributor": "Northlight"},
         {"title": "Night Teeth", "genres": ["horror"]}]


def campaign(campaign_id: str = "c", *, when: dict[str, str] = MARCH, **match: Any) -> dict[str, Any]:
    return {"campaign_id": campaign_id, "name": campaign_id.upper(), **when, "match": match, "bonus_percent": 50,
            "sponsor": "Northlight"}


def day_part(name: str) -> DayPart:
    return DayPart.model_validate(next(part for part in PARTS if part["day_part_id"] == name))


@pytest.mark.parametrize(
    ("name", "local_time", "inside"),
    [
        pytest.param("matinee", paris(2026, 3, 10, 9, 59), False, id="matinee-10h-13h-not-at-9h59"),
        pytest.param("matinee", paris(2026, 3, 10, 10, 0), True, id="matinee-10h-13h-at-10h00"),
        pytest.param("matinee", paris(2026, 3, 10, 12, 59), True, id="matinee-10h-13h-at-12h59"),
        pytest.param("matinee", paris(2026, 3, 10, 13, 0), False, id="matinee-10h-13h-not-at-13h00"),
        pytest.param("late", paris(2026, 3, 13, 21, 59), False, id="late-fri-not-at-fri-21h59"),
        pytest.param("late", paris(2026, 3, 13, 22, 0), True, id="late-fri-at-fri-22h00"),
        pytest.param("late", paris(2026, 3, 14, 1, 59), True, id="late-fri-runs-to-sat-01h59"),
        pytest.param("late", paris(2026, 3, 14, 2, 0), False, id="late-fri-over-at-sat-02h00"),
        pytest.param("late", paris(2026, 3, 15, 1, 0), True, id="sun-01h00-belongs-to-late-sat"),
        pytest.param("late", paris(2026, 3, 16, 1, 0), False, id="mon-01h00-belongs-to-sunday-no-late"),
        pytest.param("late", paris(2026, 3, 12, 23, 0), False, id="thu-23h00-no-late-on-thursdays"),
    ],
)
def test_day_parts_in_local_time(name: str, local_time: datetime, inside: bool) -> None:
    assert in_day_part(day_part(name), local(local_time, PARIS)) is inside


LINE: dict[str, Any] = {"at": datetime(2026, 3, 10, 18, 0, tzinfo=UTC), "kind": "ticket", "film": "Harbour of Glass",
                        "genres": ("drama",), "hall": "h1", "site_id": "riverside",
                        "day_parts": frozenset({"evening"}), "fmt": "3d", "programme": "default"}


@pytest.mark.parametrize(
    ("match", "line", "pays"),
    [
        pytest.param({}, {}, True, id="empty-match-pays-on-every-ticket"),
        pytest.param({}, {"kind": "concession"}, False, id="tickets-only-by-default-not-popcorn"),
        pytest.param({"kinds": ["concession"]}, {"kind": "concession"}, True, id="concession-campaign-pays-popcorn"),
        pytest.param({"films": ["harbour of glass"]}, {}, True, id="film-title-in-any-case-pays"),
        pytest.param({"films": ["Night Teeth"]}, {}, False, id="other-film-does-not-pay"),
        pytest.param({"films": ["Night Teeth"]}, {"film": None}, False, id="line-without-film-does-not-pay"),
        pytest.param({"genres": ["Drama"]}, {}, True, id="genre-drama-pays-drama"),
        pytest.param({"genres": ["horror"]}, {}, False, id="genre-horror-not-drama"),
        pytest.param({"halls": ["h1"]}, {}, True, id="hall-h1-pays-h1"),
        pytest.param({"halls": ["h2"]}, {}, False, id="hall-h2-not-h1"),
        pytest.param({"sites": ["riverside"]}, {}, True, id="site-riverside-pays-riverside"),
        pytest.param({"sites": ["uptown"]}, {}, False, id="site-uptown-not-riverside"),
        pytest.param({"day_parts": ["evening"]}, {}, True, id="day-part-evening-pays-evening"),
        pytest.param({"day_parts": ["matinee"]}, {}, False, id="day-part-matinee-not-evening"),
        pytest.param({"formats": ["3D"]}, {}, True, id="format-3d-in-any-case-pays"),
        pytest.param({"formats": ["imax"]}, {}, False, id="format-imax-not-3d"),
        pytest.param({"formats": ["3d"]}, {"fmt": None}, False, id="line-without-format-not-3d-campaign"),
        pytest.param({"programmes": ["default"]}, {}, True, id="programme-default-pays-default"),
        pytest.param({"programmes": ["students"]}, {}, False, id="programme-students-not-default"),
    ],
)
def test_what_a_campaign_matches(match: dict[str, Any], line: dict[str, Any], pays: bool) -> None:
    model = Campaign.model_validate(campaign(**match))
    assert matches(model, **{**LINE, **line}) is pays


START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "pays"),
    [
        pytest.param(START - timedelta(microseconds=1), False, id="a-microsecond-before-starts-at-pays-nothing"),
        pytest.param(START, True, id="at-starts-at-pays"),
        pytest.param(END - timedelta(microseconds=1), True, id="a-microsecond-before-ends-at-pays"),
        pytest.param(END, False, id="at-ends-at-pays-nothing"),
    ],
)
def test_a_campaign_runs_from_starts_at_to_before_ends_at(at: datetime, pays: bool) -> None:
    bundle = rules_bundle(campaigns=[campaign()])
    decision, _ = sell(bundle, [], [ticket(1000)], at)
    assert [part.rule for part in decision.earned_by] == ["tickets", "campaign:c"] if pays else ["tickets"]


@pytest.mark.parametrize(
    ("line", "pays"),
    [
        pytest.param({"film": "Harbour of Glass"}, True, id="catalogue-says-drama-pays"),
        pytest.param({"film": "harbour of glass"}, True, id="catalogue-title-in-any-case-pays"),
        pytest.param({"film": "Night Teeth"}, False, id="catalogue-says-horror-no-bonus"),
        pytest.param({"film": "Unlisted Film"}, False, id="film-not-in-catalogue-no-genre-no-bonus"),
        pytest.param({"film": "Unlisted Film", "genre": "Drama"}, True, id="till-genre-drama-pays"),
        pytest.param({"film": "Harbour of Glass", "genre": "horror"}, False, id="till-genre-wins-over-catalogue"),
    ],
)
def test_a_genre_campaign_reads_the_line_genre_else_the_catalogue(line: dict[str, Any], pays: bool) -> None:
    bundle = rules_bundle(films=FILMS, campaigns=[campaign(genres=["drama"])])
    decision, _ = sell(bundle, [], [ticket(1000, **line)], paris(2026, 3, 10, 20))
    assert any(part.rule == "campaign:c" for part in decision.earned_by) is pays


def test_a_day_part_campaign_reads_the_showtime_in_local_time_across_the_spring_dst_change() -> None:
    # Both showtimes are 08:00 UTC: 09:00 in Paris on Saturday 28 March, 10:00 on Sunday 29 March (summer time).
    bundle = rules_bundle(day_parts=PARTS[:1], campaigns=[campaign(day_parts=["matinee"])])
    sold_at = paris(2026, 3, 27, 20)
    before, _ = sell(bundle, [], [ticket(1000, showtime=datetime(2026, 3, 28, 8, tzinfo=UTC))], sold_at)
    after, _ = sell(bundle, [], [ticket(1000, showtime=datetime(2026, 3, 29, 8, tzinfo=UTC))], sold_at)
    assert [part.rule for part in before.earned_by] == ["tickets"]
    assert [part.rule for part in after.earned_by] == ["tickets", "campaign:c"]


@pytest.mark.parametrize(
    ("first", "second", "refused"),
    [
        pytest.param({}, {}, True, id="same-month-same-scope-refused"),
        pytest.param({}, {"when": APRIL}, False, id="b-starting-when-a-ends-accepted"),
        pytest.param({"films": ["Harbour of Glass"]}, {"films": ["Night Teeth"]}, False, id="different-films-accepted"),
        pytest.param({"films": ["Harbour of Glass"]}, {"films": ["HARBOUR OF GLASS"]}, True, id="same-film-refused"),
        pytest.param({"films": ["Harbour of Glass"]}, {"genres": ["drama"]}, True,
                     id="film-vs-its-catalogue-genre-refused"),
        pytest.param({"films": ["Harbour of Glass"]}, {"genres": ["horror"]}, False,
                     id="film-vs-another-genre-accepted"),
        pytest.param({"genres": ["drama"]}, {"genres": ["horror"]}, False, id="different-genres-accepted"),
        pytest.param({"halls": ["h1"]}, {"halls": ["h2"]}, False, id="different-halls-accepted"),
        pytest.param({"halls": ["h1"]}, {"halls": ["h1", "h2"]}, True, id="shared-hall-refused"),
        pytest.param({"sites": ["riverside"]}, {"sites": ["uptown"]}, False, id="different-sites-accepted"),
        pytest.param({"sites": ["riverside"]}, {"halls": ["h1"]}, True, id="site-vs-hall-anywhere-refused"),
        pytest.param({"day_parts": ["matinee"]}, {"day_parts": ["evening"]}, False,
                     id="matinee-vs-evening-accepted"),
        pytest.param({"day_parts": ["matinee"]}, {"day_parts": ["afternoon"]}, True,
                     id="matinee-10-13-vs-afternoon-12-15-refused"),
        pytest.param({"day_parts": ["blink"]}, {"day_parts": ["wink"]}, True,
                     id="10h14-10h16-vs-10h15-10h17-share-a-minute-refused"),
        pytest.param({"day_parts": ["early"]}, {"day_parts": ["after"]}, False,
                     id="10h00-10h05-vs-10h05-10h20-touch-only-accepted"),
        pytest.param({"day_parts": ["late"]}, {"day_parts": ["matinee"]}, False, id="late-vs-matinee-accepted"),
        pytest.param({"formats": ["3d"]}, {"formats": ["imax"]}, False, id="different-formats-accepted"),
        pytest.param({"kinds": ["ticket"]}, {"kinds": ["concession"]}, False, id="tickets-vs-popcorn-accepted"),
        pytest.param({}, {"programmes": ["default"]}, True, id="any-programme-vs-default-refused"),
        pytest.param({"programmes": ["default"]}, {"programmes": ["students"]}, False,
                     id="different-programmes-accepted"),
    ],
)
def test_two_campaigns_that_could_pay_on_one_line_are_refused(first: dict[str, Any], second: dict[str, Any],
                                                              refused: bool) -> None:
    fields = {"day_parts": PARTS, "films": FILMS, "programmes": [{"programme_id": "students", "name": "Students"}],
              "campaigns": [campaign("a", **first), campaign("b", **second)]}
    if not refused:
        assert len(rules_bundle(**fields).campaigns) == 2
        return
    with pytest.raises(ValidationError, match="campaigns a and b could both pay on the same line between "
                                              "2026-03-01 and 2026-04-01") as caught:
        rules_bundle(**fields)
    assert len(caught.value.errors()) == 1


def test_a_late_night_part_that_runs_into_monday_overlaps_a_monday_part() -> None:
    fields = {"day_parts": [{"day_part_id": "sunday-late", "start": "23:00", "end": "01:00", "days": ["sun"]},
                            {"day_part_id": "monday-early", "start": "00:30", "end": "02:00", "days": ["mon"]}],
              "campaigns": [campaign("a", day_parts=["sunday-late"]), campaign("b", day_parts=["monday-early"])]}
    with pytest.raises(ValidationError, match="campaigns a and b could both pay"):
        rules_bundle(**fields)


TIERS = {"levels": [{"tier_id": "regular", "name": "Regular"},
                    {"tier_id": "silver", "name": "Silver", "min_visits": 6},
                    {"tier_id": "gold", "name": "Gold", "min_visits": 6}]}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        pytest.param({"earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000,
                                   "day_parts": {"matinee": 50}}]},
                     "earning rule tickets names day part 'matinee', which is not defined",
                     id="earning-names-an-undefined-day-part"),
        pytest.param({"campaigns": [campaign(day_parts=["matinee"])]},
                     "campaign c names day part 'matinee', which is not defined",
                     id="campaign-names-an-undefined-day-part"),
        pytest.param({"campaigns": [campaign(programmes=["students"])]},
                     "campaign c names programme 'students', which is not in the bundle",
                     id="campaign-names-an-unknown-programme"),
        pytest.param({"discount": {"min_bp": 200, "max_bp": 1000,
                                   "steps": [{"lifetime_spend": 10_000, "discount_bp": 1200}]}},
                     "a discount step of 12 % is above the maximum of 10 %", id="discount-step-12pct-above-max-10pct"),
        pytest.param({"discount": {"min_bp": 1100, "max_bp": 1000}},
                     "a discount step of 11 % is above the maximum of 10 %", id="discount-min-11pct-above-max-10pct"),
        pytest.param({"tiers": TIERS}, "tier gold must need more visits than silver",
                     id="gold-at-6-visits-not-above-silver-at-6"),
        pytest.param({"tiers": {"levels": [*TIERS["levels"][:2], {"tier_id": "gold", "name": "G", "min_spend": 50_000},
                                           {"tier_id": "platinum", "name": "P", "min_visits": 4}]}},
                     "tier platinum must need more visits than silver",
                     id="platinum-at-4-visits-below-silver-at-6-with-gold-by-spend-between"),
        pytest.param({"tiers": {"levels": [{"tier_id": "regular", "name": "R", "min_visits": 1}]}},
                     "the lowest tier \\(regular\\) is every member's", id="lowest-tier-with-a-threshold"),
        pytest.param({"tiers": {"levels": [{"tier_id": "regular", "name": "R"}, {"tier_id": "silver", "name": "S"}]}},
                     "tier silver needs min_visits or min_spend", id="upper-tier-without-a-threshold"),
        pytest.param({"campaigns": [{**campaign(), "ends_at": MARCH["starts_at"]}]},
                     "campaign c ends before it starts", id="campaign-ending-when-it-starts"),
        pytest.param({"campaigns": [{**campaign(), "bonus_percent": 0}]},
                     "campaign c pays nothing", id="campaign-paying-nothing"),
        pytest.param({"films": [FILMS[0], {"title": "HARBOUR OF GLASS"}]},
                     "a film is listed twice in the catalogue", id="film-listed-twice-in-any-case"),
        pytest.param({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'", id="unknown-time-zone"),
        pytest.param({"programmes": [{"programme_id": "default", "name": "Again"}]},
                     "programme ids must be unique", id="a-programme-called-default"),
    ],
)
def test_a_bad_bundle_is_refused_with_one_clear_sentence(fields: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint) as caught:
        rules_bundle(**fields)
    assert len(caught.value.errors()) == 1
