"""Seeding for bench/hq_scale.py: the hub state a year of sales and a chain's members leave in PostgreSQL,
generated with set-based SQL and aggregated as ingest counts (hq_scale.py's docstring says how), then checked
against the code's own computations."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.analytics.dayparts import DAY_PARTS
from cloud.analytics.members_churn import ALPHA, FACTOR, MIN_DAYS, MIN_VISITS
from cloud.analytics.members_tiers import account_columns
from cloud.bundles import publish_draft
from cloud.members.accounts import running_bundle
from protocol.calendar import add_months, month_key
from protocol.fraud import REASONS
from protocol.signing import public_key_text

ADMIN_URL = os.environ.get("MARQUEE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent
ZONES = ("Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/London", "Europe/Lisbon", "Europe/Rome",
         "Europe/Brussels", "Europe/Helsinki")
SLOT_HOURS = (11, 14, 17, 20, 22)
"""Each hall's five shows a day, local start hours (the minute is the hall's: 10 x hall mod 60)."""
GENRES = ("action", "animation", "comedy", "documentary", "drama", "family", "horror", "scifi")
TIERS = (("silver", 6), ("gold", 15))
CAMPAIGN = "bench-campaign"
MEMBER_SHARE = 0.4
DAYS = 365
MANAGER_SITE = "site-0002"
"""A site with eight halls, the most (4 + 7n mod 5)."""


def member_id(column: str) -> str:
    return f"('m' || lpad(to_hex({column}), 16, '0'))"


def title(column: str) -> str:
    return f"('Film ' || lpad(({column})::text, 3, '0'))"


def slot_hour(column: str) -> str:
    return f"(ARRAY[{','.join(map(str, SLOT_HOURS))}])[{column} + 1]"


def day_part(hour: str) -> str:
    """`cloud.analytics.dayparts.day_part` as SQL."""
    return "CASE " + " ".join(f"WHEN {hour} < {after} THEN '{name}'" for name, _, after in DAY_PARTS) + " END"


def films(days: int) -> list[tuple[int, tuple[str, ...]]]:
    """Every film shown (three new a week, each four weeks on) and its genres (one in three has a second)."""
    count = (days // 7) * 3 + 12
    return [(n, (GENRES[n % 8],) + ((GENRES[(n // 8 + 3) % 8],) if n % 3 == 0 and (n // 8 + 3) % 8 != n % 8 else ()))
            for n in range(count)]


STAGING = f"""
CREATE UNLOGGED TABLE _bench_sales AS
SELECT site, day, hour::smallint, hall::smallint, slot::smallint, film, tickets::smallint,
       tickets * (ARRAY[850, 1050, 1250, 1350, 1350])[slot + 1] AS ticket_revenue, items * 480 AS concession_revenue,
       items::smallint, member
FROM (SELECT r.site, CAST(:first AS date) + r.d AS day, r.hall, r.slot,
             greatest(9, {slot_hour('r.slot')} - floor(r.rb * r.rb * 4)::int) AS hour,
             (r.d / 7) * 3 + ((r.site * 7 + r.hall * 5 + (r.slot / 2) * 3) % 12) AS film,
             CASE WHEN r.rt < 0.35 THEN 1 WHEN r.rt < 0.7 THEN 2 WHEN r.rt < 0.9 THEN 3 ELSE 4 END AS tickets,
             CASE WHEN r.rc < 0.6 THEN 1 + floor(r.ri * 3)::int ELSE 0 END AS items,
             CASE WHEN r.rm < {MEMBER_SHARE} THEN r.site + :sites * floor(power(r.rk, 1.3) * :per_site)::int END
               AS member
      FROM (SELECT q.*, 1 + floor(q.rh * s.halls)::int AS hall,
                   CASE WHEN q.rs < 0.08 THEN 0 WHEN q.rs < 0.28 THEN 1 WHEN q.rs < 0.55 THEN 2
                        WHEN q.rs < 0.85 THEN 3 ELSE 4 END AS slot
            FROM (SELECT floor(random() * :sites)::int AS site, floor(random() * :days)::int AS d, random() AS rh,
                         random() AS rs, random() AS rb, random() AS rt, random() AS rc, random() AS ri,
                         random() AS rm, random() AS rk
                  FROM generate_series(1, :transactions)) q
            JOIN _bench_sites s ON s.n = q.site) r) x
"""
SUMS = ("sum(tickets) AS tickets, sum(ticket_revenue) AS ticket_revenue, sum(concession_revenue) AS "
        "concession_revenue, sum(items) AS concession_items, sum(sales) AS sales, sum(member_sales) AS member_sales")
AMOUNT_COLUMNS = "tickets, ticket_revenue, concession_revenue, concession_items, sales, member_sales"
ROLLUP_SUMS = ", ".join(f"sum({column})" for column in AMOUNT_COLUMNS.split(", "))
SHOWTIME = f"((a.day + make_time({slot_hour('a.slot')}, (a.hall * 10) % 60, 0)) AT TIME ZONE s.tz)"
SEED_SQL: tuple[tuple[str, str], ...] = (
    ("sites, halls, boxes", f"""
CREATE UNLOGGED TABLE _bench_sites AS
SELECT n, 'site-' || lpad(n::text, 4, '0') AS site_id, (ARRAY['{"','".join(ZONES)}'])[1 + n % {len(ZONES)}] AS tz,
       4 + (n * 7) % 5 AS halls FROM generate_series(0, :sites - 1) n;
INSERT INTO sites (site_id, first_seen, last_seen, name, latitude, longitude, timezone)
SELECT site_id, :start, :now, 'Cinema ' || (n + 1), 37 + (n * 37 % 200) / 10.0, -8 + (n * 53 % 300) / 10.0, tz
FROM _bench_sites;
INSERT INTO halls (site_id, hall, name, seats, updated_at)
SELECT s.site_id, h::text, 'Hall ' || h, 60 + (s.n * 31 + h * 17) % 200, :now
FROM _bench_sites s, generate_series(1, s.halls) h;
INSERT INTO devices (device_id, site_id, public_key, registered_at, last_seq, last_hash, last_seen, online, status,
                     status_at)
SELECT 'box-' || lpad(n::text, 4, '0'), site_id, :key, :start, 0, md5(site_id) || md5(tz), :now, true,
       jsonb_build_object('backlog', 0, 'version', '1.0.0', 'rules_version', 1, 'clock_ok', true,
                          'disk_free_bytes', 8000000000, 'counters', jsonb_build_object('sales', 0)), :now
FROM _bench_sites;
CREATE UNLOGGED TABLE _bench_films (film int, genre text);
"""),
    ("staging: the sales", STAGING),
    ("staging: by show and hour", """
CREATE UNLOGGED TABLE _bench_agg AS
SELECT site, day, hour, hall, slot, film, sum(tickets) AS tickets, sum(ticket_revenue) AS ticket_revenue,
       sum(concession_revenue) AS concession_revenue, sum(items) AS items, count(*) AS sales,
       count(member) AS member_sales
FROM _bench_sales GROUP BY site, day, hour, hall, slot, film;
UPDATE devices d SET last_seq = c.sales, status = jsonb_set(d.status, '{counters,sales}', to_jsonb(c.sales))
FROM (SELECT s.site_id, sum(a.sales) AS sales FROM _bench_agg a JOIN _bench_sites s ON s.n = a.site
      GROUP BY s.site_id) c WHERE d.site_id = c.site_id;
"""),
    ("rollups: sales", f"""
INSERT INTO sales_hourly (site_id, day, hour, film, hall, currency, {AMOUNT_COLUMNS})
SELECT s.site_id, a.day, a.hour, {title('a.film')}, a.hall::text, 'EUR', {AMOUNT_COLUMNS}
FROM (SELECT site, day, hour, film, hall, {SUMS} FROM _bench_agg
      GROUP BY site, day, hour, film, hall) a JOIN _bench_sites s ON s.n = a.site ORDER BY a.day;
INSERT INTO sales_daily (site_id, day, film, hall, currency, {AMOUNT_COLUMNS})
SELECT s.site_id, a.day, {title('a.film')}, a.hall::text, 'EUR', {AMOUNT_COLUMNS}
FROM (SELECT site, day, film, hall, {SUMS} FROM _bench_agg GROUP BY site, day, film, hall) a
JOIN _bench_sites s ON s.n = a.site ORDER BY a.day;
INSERT INTO sales_monthly (site_id, month, film, hall, currency, {AMOUNT_COLUMNS})
SELECT site_id, date_trunc('month', day)::date, film, hall, currency, {ROLLUP_SUMS} FROM sales_daily
GROUP BY site_id, date_trunc('month', day)::date, film, hall, currency ORDER BY 2;
INSERT INTO site_hourly (site_id, day, hour, currency, {AMOUNT_COLUMNS})
SELECT s.site_id, a.day, a.hour, 'EUR', {AMOUNT_COLUMNS}
FROM (SELECT site, day, hour, {SUMS} FROM _bench_agg GROUP BY site, day, hour) a JOIN _bench_sites s ON s.n = a.site
ORDER BY a.day;
INSERT INTO site_dayparts (site_id, day, daypart, currency, {AMOUNT_COLUMNS})
SELECT s.site_id, a.day, a.daypart, 'EUR', {AMOUNT_COLUMNS}
FROM (SELECT site, day, {day_part(slot_hour('slot'))} AS daypart, {SUMS} FROM _bench_agg GROUP BY 1, 2, 3) a
JOIN _bench_sites s ON s.n = a.site ORDER BY a.day;
INSERT INTO site_hours_monthly (site_id, month, hour, currency, {AMOUNT_COLUMNS})
SELECT site_id, date_trunc('month', day)::date, hour, currency, {ROLLUP_SUMS} FROM site_hourly
GROUP BY site_id, date_trunc('month', day)::date, hour, currency ORDER BY 2;
INSERT INTO site_dayparts_monthly (site_id, month, daypart, currency, {AMOUNT_COLUMNS})
SELECT site_id, date_trunc('month', day)::date, daypart, currency, {ROLLUP_SUMS} FROM site_dayparts
GROUP BY site_id, date_trunc('month', day)::date, daypart, currency ORDER BY 2;
INSERT INTO box_office (site_id, day, film, hall, currency, tickets, ticket_revenue, concession_revenue, sales)
SELECT site_id, utc_day, film, hall, 'EUR', sum(tickets), sum(ticket_revenue), sum(concession_revenue), sum(sales)
FROM (SELECT s.site_id, ((a.day + make_time(a.hour, 30, 0)) AT TIME ZONE s.tz AT TIME ZONE 'UTC')::date AS utc_day,
             {title('a.film')} AS film, a.hall::text AS hall, a.tickets, a.ticket_revenue, 0 AS concession_revenue,
             a.sales
      FROM _bench_agg a JOIN _bench_sites s ON s.n = a.site
      UNION ALL
      SELECT s.site_id, ((a.day + make_time(a.hour, 30, 0)) AT TIME ZONE s.tz AT TIME ZONE 'UTC')::date, '', '', 0, 0,
             a.concession_revenue, 0
      FROM _bench_agg a JOIN _bench_sites s ON s.n = a.site WHERE a.concession_revenue > 0) x
GROUP BY site_id, utc_day, film, hall ORDER BY utc_day;
"""),
    ("rollups: shows", f"""
CREATE UNLOGGED TABLE _bench_shows AS
SELECT site, day, hall, slot, film, {SUMS} FROM _bench_agg GROUP BY site, day, hall, slot, film;
INSERT INTO show_sales (site_id, hall, showtime, film, currency, show_day, show_hour, {AMOUNT_COLUMNS})
SELECT s.site_id, a.hall::text, {SHOWTIME}, {title('a.film')}, 'EUR', a.day, {slot_hour('a.slot')}, {AMOUNT_COLUMNS}
FROM _bench_shows a JOIN _bench_sites s ON s.n = a.site ORDER BY 3;
INSERT INTO show_daily (site_id, day, film, hall, shows, tickets)
SELECT s.site_id, a.day, {title('a.film')}, a.hall::text, count(*), sum(a.tickets)
FROM _bench_shows a JOIN _bench_sites s ON s.n = a.site GROUP BY s.site_id, a.day, a.film, a.hall
ORDER BY a.day;
INSERT INTO show_monthly (site_id, month, film, hall, shows, tickets)
SELECT site_id, date_trunc('month', day)::date, film, hall, sum(shows), sum(tickets) FROM show_daily
GROUP BY site_id, date_trunc('month', day)::date, film, hall ORDER BY 2;
INSERT INTO show_dayparts (site_id, day, daypart, hall, shows, tickets)
SELECT s.site_id, a.day, {day_part(slot_hour('a.slot'))}, a.hall::text, count(*), sum(a.tickets)
FROM _bench_shows a JOIN _bench_sites s ON s.n = a.site GROUP BY 1, 2, 3, 4 ORDER BY 2;
INSERT INTO show_dayparts_monthly (site_id, month, daypart, hall, shows, tickets)
SELECT site_id, date_trunc('month', day)::date, daypart, hall, sum(shows), sum(tickets) FROM show_dayparts
GROUP BY site_id, date_trunc('month', day)::date, daypart, hall ORDER BY 2;
"""),
    ("members: visit days", f"""
CREATE UNLOGGED TABLE _bench_visits AS
SELECT member, day, min(site) AS site, count(*) AS sales, sum(ticket_revenue + concession_revenue) AS spend
FROM _bench_sales WHERE member IS NOT NULL GROUP BY member, day;
INSERT INTO member_visits (member_id, day, site_id, sales, spend)
SELECT {member_id('v.member')}, v.day, s.site_id, v.sales, v.spend
FROM _bench_visits v JOIN _bench_sites s ON s.n = v.site ORDER BY v.day;
CREATE FUNCTION _bench_next_interval(interval_days float8, gap int) RETURNS float8 LANGUAGE sql IMMUTABLE AS
'SELECT CASE WHEN interval_days IS NULL THEN gap::float8
             ELSE CAST({ALPHA!r} AS float8) * gap + CAST({1 - ALPHA!r} AS float8) * interval_days END';
CREATE AGGREGATE _bench_interval(int) (SFUNC = _bench_next_interval, STYPE = float8);
CREATE UNLOGGED TABLE _bench_mvis AS
SELECT member, count(*) AS visits, min(day) AS first_visit, max(day) AS last_visit,
       _bench_interval(gap ORDER BY day) FILTER (WHERE gap IS NOT NULL) AS interval_days
FROM (SELECT member, day, day - lag(day) OVER (PARTITION BY member ORDER BY day) AS gap FROM _bench_visits) v
GROUP BY member;
CREATE UNLOGGED TABLE _bench_mact AS
SELECT member, jsonb_object_agg(month, jsonb_build_array(visits, spend)) AS activity,
       coalesce(sum(visits) FILTER (WHERE month >= :window_first), 0)::bigint AS now_visits,
       coalesce(sum(visits) FILTER (WHERE month >= :review_first AND month < :month), 0)::bigint AS review_visits
FROM (SELECT member, to_char(day, 'YYYY-MM') AS month, count(*) AS visits, sum(spend)::bigint AS spend
      FROM _bench_visits GROUP BY 1, 2) m GROUP BY member;
"""),
    ("members: activity", f"""
CREATE UNLOGGED TABLE _bench_msum AS
SELECT member, min(site) AS home, count(*) AS sales, sum(tickets)::bigint AS tickets,
       sum(ticket_revenue)::bigint AS ticket_spend, sum(concession_revenue)::bigint AS concession_spend
FROM _bench_sales WHERE member IS NOT NULL GROUP BY member;
CREATE UNLOGGED TABLE _bench_mcamp AS
SELECT b.member, min((b.day + make_time(b.hour, 30, 0)) AT TIME ZONE s.tz) AS first_at,
       5 * sum(b.tickets)::bigint AS points
FROM _bench_sales b JOIN _bench_sites s ON s.n = b.site
WHERE b.member % 3 = 0 AND b.day >= :campaign_start AND b.day < :campaign_end GROUP BY b.member;
CREATE UNLOGGED TABLE _bench_mpref AS
SELECT g.member, g.genres, g.genre, p.parts, p.part
FROM (SELECT member, jsonb_object_agg(genre, n) AS genres, (array_agg(genre ORDER BY n DESC, genre))[1] AS genre
      FROM (SELECT b.member, f.genre, sum(b.tickets) AS n FROM _bench_sales b JOIN _bench_films f ON f.film = b.film
            WHERE b.member IS NOT NULL GROUP BY 1, 2) x GROUP BY member) g
JOIN (SELECT member, jsonb_object_agg(part, n) AS parts, (array_agg(part ORDER BY n DESC, part))[1] AS part
      FROM (SELECT member, {day_part(slot_hour('slot'))} AS part, count(*) AS n FROM _bench_sales
            WHERE member IS NOT NULL GROUP BY 1, 2) y GROUP BY member) p ON p.member = g.member;
INSERT INTO member_campaigns (campaign_id, member_id, first_at, points)
SELECT '{CAMPAIGN}', {member_id('member')}, first_at, points FROM _bench_mcamp;
INSERT INTO member_activity (member_id, home_site, first_visit, last_visit, visits, sales, tickets, ticket_spend,
    concession_spend, spend, points_earned, interval_days, churn_at, site_visits, genres, day_parts, favourite_genre,
    favourite_day_part, balance, updated_at)
SELECT {member_id('m.member')}, s.site_id, v.first_visit, v.last_visit, v.visits, m.sales, m.tickets, m.ticket_spend,
       m.concession_spend, m.ticket_spend + m.concession_spend, 10 * m.tickets + coalesce(c.points, 0),
       v.interval_days,
       CASE WHEN v.visits >= {MIN_VISITS} AND v.interval_days IS NOT NULL
            THEN v.last_visit + greatest(floor({FACTOR} * v.interval_days)::int + 1, {MIN_DAYS + 1}) END,
       jsonb_build_object(s.site_id, v.visits), p.genres, p.parts, p.genre, p.part,
       (10 * m.tickets + coalesce(c.points, 0)) * (1 + m.member % 4) / 4, :now
FROM _bench_msum m JOIN _bench_mvis v ON v.member = m.member JOIN _bench_sites s ON s.n = m.home
JOIN _bench_mpref p ON p.member = m.member LEFT JOIN _bench_mcamp c ON c.member = m.member;
"""),
    ("members: accounts and cards", f"""
INSERT INTO members (member_id, programme, status, created_at, updated_at, enrolled_at, balance, account)
SELECT {member_id('x.n')}, 'default', 'active', x.created, :now, x.created, x.balance,
       jsonb_build_object('as_of', CAST(:now AS timestamptz),
                          'lots', CASE WHEN x.balance > 0 THEN jsonb_build_object(CAST(:month AS text), x.balance)
                                       ELSE '{{}}'::jsonb END,
                          'tier', CASE WHEN x.tier_visits >= {TIERS[1][1]} THEN '{TIERS[1][0]}'
                                       WHEN x.tier_visits >= {TIERS[0][1]} THEN '{TIERS[0][0]}' ELSE 'blue' END,
                          'activity', coalesce(x.activity, '{{}}'::jsonb), 'lifetime_spend', x.spend,
                          'last_visit', x.last_visit, 'first_seen', x.first_visit)
FROM (SELECT n.n, CAST(:start AS timestamptz) - (n.n % 1000) * interval '1 day' AS created,
             CASE WHEN m.member IS NOT NULL THEN (10 * m.tickets + coalesce(c.points, 0)) * (1 + n.n % 4) / 4
                  WHEN n.n % 10 = 0 THEN 50 + n.n % 451 ELSE 0 END AS balance,
             greatest(a.now_visits, a.review_visits) AS tier_visits, a.activity,
             coalesce(m.ticket_spend + m.concession_spend, 0) AS spend, v.last_visit, v.first_visit
      FROM generate_series(0, :members - 1) n LEFT JOIN _bench_msum m ON m.member = n.n
      LEFT JOIN _bench_mvis v ON v.member = n.n LEFT JOIN _bench_mact a ON a.member = n.n
      LEFT JOIN _bench_mcamp c ON c.member = n.n) x;
INSERT INTO member_cards (card_token, member_id, state, label, added_at, state_at)
SELECT md5('bench-card-' || n), {member_id('n')}, 'active', 'em4100:******' || right(md5('bench-card-' || n), 4),
       :start, :start FROM generate_series(0, :members - 1) n;
"""),
    ("feedback, complaints, alert cases", f"""
INSERT INTO nps_daily (site_id, day, film, hall, answers, promoters, passives, detractors, film_sum, film_count,
                       hall_sum, hall_count, staff_sum, staff_count)
SELECT s.site_id, x.day, {title('x.film')}, x.hall::text, count(*), count(*) FILTER (WHERE x.nps >= 9),
       count(*) FILTER (WHERE x.nps BETWEEN 7 AND 8), count(*) FILTER (WHERE x.nps <= 6),
       sum(x.film_score), count(x.film_score), coalesce(sum(x.hall_score), 0), count(x.hall_score),
       coalesce(sum(x.staff_score), 0), count(x.staff_score)
FROM (SELECT site, day, film, hall, least(10, floor(11 * power(random(), 0.45)))::int AS nps,
             1 + floor(4.99 * power(random(), 0.6))::int AS film_score,
             CASE WHEN random() < 0.8 THEN 1 + floor(4.99 * power(random(), 0.5))::int END AS hall_score,
             CASE WHEN random() < 0.7 THEN 1 + floor(4.99 * power(random(), 0.5))::int END AS staff_score
      FROM _bench_sales TABLESAMPLE BERNOULLI (2)) x JOIN _bench_sites s ON s.n = x.site
GROUP BY 1, 2, 3, 4 ORDER BY 2;
INSERT INTO complaints (site_id, category, state, source, opened_at, opened_by, due_at, responded_at, resolved_at,
                        state_at)
SELECT site_id, (ARRAY['cleanliness', 'picture_sound', 'staff', 'food_drink', 'tickets_prices', 'accessibility',
                       'other'])[1 + g % 7],
       CASE WHEN opened > CAST(:now AS timestamptz) - interval '7 days'
            THEN (ARRAY['open', 'in_progress', 'answered'])[1 + g % 3]
            ELSE (ARRAY['resolved', 'closed'])[1 + g % 2] END,
       'hq', opened, 'bench-admin', opened + interval '48 hours',
       CASE WHEN opened <= CAST(:now AS timestamptz) - interval '7 days' OR g % 3 = 2
            THEN opened + interval '20 hours' END,
       CASE WHEN opened <= CAST(:now AS timestamptz) - interval '7 days' THEN opened + interval '60 hours' END, opened
FROM (SELECT s.site_id, g, CAST(:now AS timestamptz) - random() * interval '365 days' AS opened
      FROM _bench_sites s, generate_series(1, 50) g) x ORDER BY opened;
INSERT INTO complaint_history (complaint_id, at, to_state) SELECT id, opened_at, 'open' FROM complaints;
INSERT INTO alerts (dedupe_key, code, severity, action, source, site_id, device_id, summary, figures, events, first_at,
                    last_at, raised_at, count, state, state_at)
SELECT site_id || '\\:bench-' || g, (ARRAY['{"','".join(sorted(REASONS)[:12])}'])[1 + (g * 7 + n) % 12],
       (ARRAY['info', 'warning', 'critical'])[1 + g % 3], 'flag', 'box', site_id, 'box-' || lpad(n::text, 4, '0'),
       'a case of the bench', '{{}}', '[]', raised, raised, raised, 1,
       CASE WHEN raised > CAST(:now AS timestamptz) - interval '3 days' THEN 'open' ELSE 'resolved' END, raised
FROM (SELECT s.site_id, s.n, g, CAST(:now AS timestamptz) - random() * interval '365 days' AS raised
      FROM _bench_sites s, generate_series(1, 100) g) x ORDER BY raised;
"""),
)
STAGING_TABLES = ("_bench_sales", "_bench_agg", "_bench_shows", "_bench_visits", "_bench_mvis", "_bench_mact",
                  "_bench_msum", "_bench_mcamp", "_bench_mpref", "_bench_films", "_bench_sites")
COUNTED = ("sites", "halls", "devices", "sales_hourly", "sales_daily", "sales_monthly", "site_hourly",
           "site_hours_monthly", "site_dayparts", "site_dayparts_monthly", "show_sales", "show_daily", "show_monthly",
           "show_dayparts", "show_dayparts_monthly", "box_office", "members", "member_cards",
           "member_activity", "member_visits", "member_campaigns", "nps_daily", "complaints", "alerts")


def schema_url(schema: str) -> str:
    return f"{ADMIN_URL}?options=-csearch_path%3D{schema}"


@contextmanager
def step(what: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {what}: {time.perf_counter() - started:.1f} s", flush=True)


def seed(engine: sa.Engine, args: argparse.Namespace, now: datetime) -> None:
    """Everything the dashboard reads, as a year of `args.transactions` sales leaves it (see the docstring)."""
    last = now.date()
    first = last - timedelta(days=DAYS - 1)
    month = month_key(last)
    campaign_start = last - timedelta(days=100)
    params = {"sites": args.sites, "members": args.members, "transactions": args.transactions, "days": DAYS,
              "per_site": args.members // args.sites, "first": first, "now": now,
              "start": datetime.combine(first, day_time(0), tzinfo=UTC), "month": month,
              "window_first": add_months(month, -11), "review_first": add_months(month, -12),
              "campaign_start": campaign_start, "campaign_end": campaign_start + timedelta(days=28),
              "key": public_key_text(Ed25519PrivateKey.generate())}
    catalogue = films(DAYS)
    with engine.begin() as conn:
        publish_draft(conn, {
            "currency": "EUR", "timezone": "Europe/Paris",
            "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}],
            "tiers": {"levels": [{"tier_id": "blue", "name": "Blue"},
                                 *({"tier_id": tier, "name": tier.title(), "min_visits": visits}
                                   for tier, visits in TIERS)],
                      "window_months": 12, "review": "monthly"},
            "films": [{"title": f"Film {n:03d}", "genres": list(genres)} for n, genres in catalogue],
            "campaigns": [{"campaign_id": CAMPAIGN, "name": "The bench's campaign", "bonus_percent": 50,
                           "starts_at": datetime.combine(campaign_start, day_time(0), tzinfo=UTC).isoformat(),
                           "ends_at": datetime.combine(params["campaign_end"], day_time(0), tzinfo=UTC).isoformat()}]},
            Ed25519PrivateKey.generate(), at=params["start"] - timedelta(days=1))
    for what, script in SEED_SQL:
        with step(what), engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            for statement in (part.strip() for part in script.split(";\n")):
                if statement:
                    conn.execute(sa.text(statement), {name: value for name, value in params.items()
                                                      if f":{name}" in statement})
            if what.startswith("sites"):
                conn.execute(sa.text("INSERT INTO _bench_films VALUES (:film, :genre)"),
                             [{"film": n, "genre": genre} for n, genres in catalogue for genre in genres])
    with step("staging tables dropped"), engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {', '.join(STAGING_TABLES)}")
        conn.exec_driver_sql("DROP AGGREGATE _bench_interval(int)")
        conn.exec_driver_sql("DROP FUNCTION _bench_next_interval")
    vacuum(engine)
    with step("members' tier standing (members_tiers.account_columns)"):
        tier_columns(engine, now)
    vacuum(engine)


def vacuum(engine: sa.Engine) -> None:
    """VACUUM ANALYZE the schema's tables (the visibility map lets index-only scans skip the heap)."""
    with step("VACUUM ANALYZE"), engine.connect() as conn:
        tables = list(conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                      .scalars())
        conn.rollback()
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"VACUUM ANALYZE {', '.join(tables)}")


def tier_columns(engine: sa.Engine, now: datetime) -> None:
    """Each member's tier standing as ingest keeps it, by the code's own function, a page at a time; written
    back with COPY and one UPDATE."""
    names = ("tier", "tier_change", "tier_target", "tier_gap", "tier_month", "balance")
    with engine.begin() as conn:
        bundle = running_bundle(conn)
        conn.exec_driver_sql("CREATE TEMPORARY TABLE _bench_tiers (member_id text, tier text, tier_change text, "
                             "tier_target text, tier_gap int, tier_month text, balance bigint) ON COMMIT DROP")
        after = ""
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            while True:
                ids = list(conn.execute(sa.text("SELECT member_id FROM member_activity WHERE member_id > :after "
                                                "ORDER BY member_id LIMIT 20000"), {"after": after}).scalars())
                if not ids:
                    break
                after = ids[-1]
                values = account_columns(conn, ids, now=now, bundle=bundle)
                with cursor.copy("COPY _bench_tiers FROM STDIN") as copy:
                    for member, columns in values.items():
                        copy.write_row((member, *(columns[name] for name in names)))
        conn.exec_driver_sql("UPDATE member_activity a SET " + ", ".join(f"{name} = t.{name}" for name in names)
                             + " FROM _bench_tiers t WHERE a.member_id = t.member_id")
