"""The periodic report as data: the API's JSON, and what the CSV and XLSX files are written from.

Money is in the minor unit of its `currency` (cents), as everywhere in the API; rates are fractions (0.5 is
half). Sales in several currencies are kept apart: every money figure names its currency, and totals come one
per currency.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from cloud.reports.periods import PeriodKind

OCCUPANCY_NOTE = ("occupancy is tickets over seats offered, for shows in halls whose seats are known (the halls "
                  "catalogue); a show counts when at least one ticket for it was sold; tickets without a hall or "
                  "showtime are in the box office only")
LIABILITY_NOTE = ("points outstanding at the period's end: every member's balance now, less what their ledger moved "
                  "after the end (points earned, redeemed, expired or adjusted later), summed over members whose "
                  "balance then was above zero (an overdrawn member owes nothing and is owed nothing); their money "
                  "value is the points divided by the running rule bundle's redemption.points_per_unit (points per "
                  "minor unit), rounded down, in the bundle's currency")
MEMBERS_NOTE = ("active members: members with a card that made at least one sale in the period (days in the "
                "chain's time zone, as the daily staff activity keeps them); member sales: sales where a loyalty "
                "card was presented; new enrolments are chain-wide (members enrol at HQ, not at a site)")


class BoxOfficeLine(BaseModel):
    """Tickets sold and their revenue."""

    site_id: str | None = None
    film: str | None = None
    currency: str
    tickets: int
    ticket_revenue: int
    sales: int
    average_ticket_price: float | None
    """Ticket revenue per ticket (minor units); null without tickets."""


class BoxOffice(BaseModel):
    """Tickets and ticket revenue: totals (per currency), by site, by film, the top films."""

    totals: list[BoxOfficeLine]
    previous: list[BoxOfficeLine]
    """The previous period's totals, for comparison."""
    by_site: list[BoxOfficeLine]
    by_film: list[BoxOfficeLine]
    """Most ticket revenue first."""
    top_films: list[str]
    """The (at most ten) films with the most ticket revenue, first first."""


class ConcessionLine(BaseModel):
    """What the bar sold, against tickets."""

    site_id: str | None = None
    currency: str
    concession_revenue: int
    concession_items: int
    tickets: int
    sales: int
    attach_rate: float | None
    """Bar items per ticket; null without tickets."""
    spend_per_head: float | None
    """Bar revenue per ticket (minor units); null without tickets."""


class Concessions(BaseModel):
    totals: list[ConcessionLine]
    previous: list[ConcessionLine]
    by_site: list[ConcessionLine]


class OccupancyLine(BaseModel):
    """Shows and seats of one hall, one site, or the whole report."""

    site_id: str | None = None
    hall: str | None = None
    hall_name: str | None = None
    seats: int | None = None
    """The hall's seats (null: not in the halls catalogue)."""
    shows: int
    tickets: int
    shows_with_seats: int
    """Shows in halls whose seats are known: what occupancy counts."""
    tickets_with_seats: int
    seats_offered: int
    occupancy: float | None
    """tickets_with_seats / seats_offered; null when no seats are known."""


class Occupancy(BaseModel):
    totals: OccupancyLine
    previous: OccupancyLine
    by_site: list[OccupancyLine]
    by_hall: list[OccupancyLine]
    note: str = OCCUPANCY_NOTE


class MemberLine(BaseModel):
    """Members' part in one site's (or the report's) sales."""

    site_id: str | None = None
    sales: int
    member_sales: int
    member_sales_share: float | None
    """member_sales / sales; null without sales."""
    active_members: int


class Members(BaseModel):
    totals: MemberLine
    """Active members counted once however many sites they visited."""
    previous: MemberLine
    new_enrolments: int | None
    """Members enrolled in the period (chain-wide reports only; null for a report of some sites)."""
    previous_new_enrolments: int | None
    by_site: list[MemberLine]
    note: str = MEMBERS_NOTE


class Liability(BaseModel):
    """What the chain owes its members in points (chain-wide reports only)."""

    as_of: datetime
    """The period's end, or now while the period is not over."""
    points_outstanding: int
    members_with_points: int
    currency: str
    points_per_unit: int
    """Points that pay one minor unit of money under the running bundle."""
    value: int
    """The points' money value, minor units of `currency`."""
    redemption_enabled: bool
    """False: members cannot pay with points today; the value is what they would be worth."""
    method: str = LIABILITY_NOTE


class ComplaintLine(BaseModel):
    """How one category's complaints opened in the period were handled."""

    category: str
    opened: int
    resolved: int
    overdue: int
    median_response_hours: float | None
    median_resolution_hours: float | None


class Complaints(BaseModel):
    by_category: list[ComplaintLine]
    opened: int
    resolved: int
    overdue: int


REFUNDS_NOTE = ("refunds and voids as the tills journaled them in the period (by the refund's time, whatever the "
                "sale's day), in their site's currency; the box office and bar figures are gross, before refunds; "
                "net revenue is ticket and bar revenue less the money refunded")


class RefundLine(BaseModel):
    """Refunds and voids, against the sales' revenue."""

    site_id: str | None = None
    currency: str
    refunds: int
    """Refunds and voids."""
    refunded: int
    """Money refunded (minor units)."""
    gross_revenue: int
    """Ticket and bar revenue of the period's sales."""
    net_revenue: int
    refunded_share: float | None
    """Money refunded over gross revenue; null without revenue."""


class Refunds(BaseModel):
    """Refunds and voids: totals per currency (and the previous period's), by site."""

    totals: list[RefundLine]
    previous: list[RefundLine]
    by_site: list[RefundLine]
    note: str = REFUNDS_NOTE


class PeriodicReport(BaseModel):
    """A month's, quarter's or year's report, for one site, a site manager's sites, or the whole chain."""

    period: str
    kind: PeriodKind
    first_day: date
    last_day: date
    previous_period: str
    site_id: str | None
    """The site asked for; null for every site the viewer sees."""
    sites: list[str] | None
    """The sites the report covers; null: every site."""
    timezone: str
    """The time zone of `start`/`end` (a site's for a one-site report, else the chain's); sales are by each site's
    own local days."""
    start: datetime
    end: datetime
    generated_at: datetime
    box_office: BoxOffice
    concessions: Concessions
    refunds: Refunds
    occupancy: Occupancy
    members: Members
    liability: Liability | None
    """Chain-wide reports only (points are the chain's, not a site's)."""
    complaints: Complaints
    notes: list[str] = Field(default_factory=list)
