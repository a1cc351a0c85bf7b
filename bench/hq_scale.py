"""The HQ dashboard's API at scale: p50 and p95 of every call it makes, over the hub state that `--transactions`
sales (10 million) at `--sites` sites (200) over a year, and `--members` members (one million), leave in PostgreSQL.

Seeding (set-based SQL only): a fresh schema, migrated, gets the sites (time zones), their halls (seats) and one
box each; the sales are generated into an UNLOGGED staging table (site, local day and hour, hall, show, film,
tickets, money, member), then aggregated with GROUP BY into every rollup the way ingest counts them
(`cloud.analytics.sale_deltas`: one ticket line a sale here, so each sale counts under it), into the members'
visit days, activity, accounts, cards and the campaign they were reached by (`cloud.analytics.member_activity`),
and into the NPS rollup; complaints and alert cases are added, modestly; the staging tables are dropped, the
tables vacuumed and analysed, then the code's own functions fill the rest: each member's tier standing
(`members_tiers.account_columns`, a page of members at a time) and the member snapshot
(`members_snapshot.refresh`). Events, the points ledger and the tickets' feedback codes are not generated: no
dashboard call reads them.

Timing: a real hub (`marquee-hub serve --no-ingest`, its own process) over that schema; an admin and a site manager
of one site, each with an API token; every JSON call of the dashboard's pages over HTTP (keep-alive), 30 days (and a
year for the box office by site and by film), as each; warm-up, then `--requests` requests each.

Run: .venv/bin/python bench/hq_scale.py [--transactions 10000000] [--sites 200] [--members 1000000]
     [--requests 50] [--schema hq_bench] [--keep]   (--keep: reuse the schema when seeded with these sizes)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from hq_seed import (  # noqa: I001 (the bench folder is the script's own path)
    ADMIN_URL,
    BIN,
    CAMPAIGN,
    COUNTED,
    DAYS,
    MANAGER_SITE,
    schema_url,
    seed,
    step,
    vacuum,
)

from cloud.access.tokens import issue_token
from cloud.analytics import members_snapshot
from cloud.analytics.members_churn import churn_day, usual_interval
from cloud.auth import hash_password
from cloud.db.engine import make_engine, migrate
from cloud.db.users import add_user
from protocol.account import Account

CHECKS = (
    ("sales", [f"SELECT sum(sales) FROM {table}" for table in ("sales_hourly", "sales_daily", "sales_monthly",
                                                                 "site_hourly", "site_hours_monthly",
                                                                 "site_dayparts", "site_dayparts_monthly",
                                                                 "show_sales", "box_office")]),
    ("tickets", [f"SELECT sum(tickets) FROM {table}" for table in ("sales_hourly", "sales_daily", "sales_monthly",
                                                                     "site_hourly", "site_dayparts", "show_sales",
                                                                     "show_daily", "show_monthly", "show_dayparts",
                                                                     "box_office")]),
    ("shows", ["SELECT count(*) FROM show_sales", "SELECT sum(shows) FROM show_daily",
               "SELECT sum(shows) FROM show_dayparts", "SELECT sum(shows) FROM show_monthly",
               "SELECT sum(shows) FROM show_dayparts_monthly"]),
    ("member sales", ["SELECT sum(member_sales) FROM sales_daily", "SELECT sum(sales) FROM member_activity",
                      "SELECT sum(sales) FROM member_visits"]),
    ("visits", ["SELECT sum(visits) FROM member_activity", "SELECT count(*) FROM member_visits"]),
    ("balances", ["SELECT sum(balance) FROM member_activity",
                  "SELECT sum(m.balance) FROM members m JOIN member_activity a USING (member_id)"]),
)


def check(engine: sa.Engine) -> None:
    """The rollups agree with each other and the members' tables with them; a sample of members' usual interval,
    churn day and stored account agree with the code's own (`members_churn`, `protocol.account.Account`)."""
    with engine.connect() as conn:
        for what, queries in CHECKS:
            found = {int(conn.exec_driver_sql(query).scalar() or 0) for query in queries}
            assert len(found) == 1, f"{what}: the tables disagree ({sorted(found)})"
        sample = conn.execute(sa.text(
            "SELECT a.member_id, a.interval_days, a.churn_at, a.last_visit, a.visits, m.account, "
            "array_agg(v.day ORDER BY v.day) AS days "
            "FROM (SELECT * FROM member_activity ORDER BY random() LIMIT 500) a "
            "JOIN members m USING (member_id) JOIN member_visits v USING (member_id) "
            "GROUP BY a.member_id, a.interval_days, a.churn_at, a.last_visit, a.visits, m.account")).all()
        for row in sample:
            Account.model_validate(row.account)
            interval = usual_interval(row.days)
            assert (interval is None) == (row.interval_days is None), row.member_id
            assert interval is None or abs(interval - row.interval_days) < 1e-6, row.member_id
            assert churn_day(last_visit=row.last_visit, interval=interval, visits=row.visits) == row.churn_at
    print(f"  checked: the rollups agree ({', '.join(what for what, _ in CHECKS)}); {len(sample)} members' "
          "interval, churn day and account as the code computes them")


def counts(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        print("  rows: " + ", ".join(f"{table} {conn.exec_driver_sql(f'SELECT count(*) FROM {table}').scalar():,}"
                                     for table in COUNTED))


def prepare(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """The schema seeded (or kept from an earlier run with the same sizes); what was seeded."""
    wanted = {"transactions": args.transactions, "sites": args.sites, "members": args.members}
    admin = sa.create_engine(ADMIN_URL)
    with admin.begin() as conn:
        comment = conn.execute(sa.text("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                                       "WHERE nspname = :schema"), {"schema": args.schema}).scalar()
        seeded = json.loads(comment) if comment else None
        if args.keep and seeded is not None and {name: seeded.get(name) for name in wanted} == wanted:
            print(f"schema {args.schema} kept: seeded {seeded['seeded_at']} with {wanted} in {seeded['seconds']:.0f} s")
            admin.dispose()
            return {**seeded, "kept": True}
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{args.schema}"')
    engine = make_engine(schema_url(args.schema))
    migrate(engine)
    print(f"seeding {args.transactions:,} sales, {args.sites} sites, {args.members:,} members into {args.schema}:")
    started = time.perf_counter()
    seed(engine, args, now)
    seeded = {**wanted, "seeded_at": now.isoformat(), "last_day": now.date().isoformat(),
              "seconds": round(time.perf_counter() - started, 1)}
    print(f"seeded in {seeded['seconds']:.0f} s")
    counts(engine)
    check(engine)
    engine.dispose()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"COMMENT ON SCHEMA \"{args.schema}\" IS '{json.dumps(seeded)}'")
    admin.dispose()
    return seeded


def calls(last_day: date, film: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, path, query) of every JSON call the dashboard's pages make, over the 30 days up to `last_day`."""
    month = {"from": (last_day - timedelta(days=29)).isoformat(), "to": last_day.isoformat()}
    year = {"from": (last_day - timedelta(days=DAYS - 1)).isoformat(), "to": last_day.isoformat()}
    found: list[tuple[str, str, dict[str, Any]]] = []
    for group in ("site", "film", "hall", "day", "hour", "daypart", "weekday"):
        found.append((f"box-office {group}", "/analytics/box-office", {"group": group, **month}))
    for group in ("site", "film", "hall", "day", "hour", "daypart", "weekday"):
        found.append((f"box-office {group}, 1 year", "/analytics/box-office", {"group": group, **year}))
    for group in ("show", "film", "hall", "daypart", "site", "day"):
        found.append((f"occupancy {group}", "/analytics/occupancy", {"group": group, **month}))
    for group in ("film", "hall", "daypart", "site", "day"):
        found.append((f"occupancy {group}, 1 year", "/analytics/occupancy", {"group": group, **year}))
    found += [("today", "/analytics/today", {}), ("film trend", "/analytics/film-trend", {"film": film, **month})]
    members = "/analytics/members"
    found += [("members summary", f"{members}/summary", {}), ("members segments", f"{members}/segments", {}),
              ("members churn", f"{members}/churn", {"limit": 50}),
              *((f"members top {by}", f"{members}/top", {"by": by, "limit": 20})
                for by in ("points", "visits", "balance", "spend")),
              ("members tier-close", f"{members}/tier-close", {"limit": 20}),
              ("members preferences", f"{members}/preferences", {}),
              ("campaign effect", f"{members}/campaigns/{CAMPAIGN}/effect", {"days": 28})]
    found += [(f"nps {group}", "/feedback/nps", {"group": group, **month}) for group in ("site", "film", "hall", "day")]
    found += [(f"complaints {state}", "/complaints", {"state": state, "limit": 200})
              for state in ("open", "in_progress", "answered")]
    found += [("alerts", "/alerts", {"limit": 200}), ("alerts open", "/alerts", {"state": "open", "limit": 200}),
              ("sites", "/sites", {})]
    return found


def rows_of(body: Any) -> int:
    """How many rows an answer holds: a list's length, else the lengths of its lists (1 for a lone object)."""
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        return sum(len(value) for value in body.values() if isinstance(value, list)) or 1
    return 1


def users(engine: sa.Engine, now: datetime) -> dict[str, str]:
    """An admin and a site manager of `MANAGER_SITE`, each with an API token: scope -> token."""
    password = hash_password("bench password, never used")
    tokens = {}
    with engine.begin() as conn:
        for table in ("api_tokens", "users"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE username LIKE 'bench-%'"))
        for scope, role, sites in (("admin", "admin", None), ("site manager", "site_manager", [MANAGER_SITE])):
            username = f"bench-{role.replace('_', '-')}"
            add_user(conn, username=username, password_hash=password, role=role, created_at=now, sites=sites)
            tokens[scope], _ = issue_token(conn, username=username, name="bench", created_by="bench-admin", now=now,
                                           expires_at=None)
    return tokens


@contextmanager
def hub(url: str, log: Path) -> Iterator[str]:
    """`marquee-hub serve --no-ingest` over `url` on a free port; its base URL."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "MARQUEE_HUB_DATABASE_URL": url,
           # The member counts' snapshot is refreshed before the timing: a refresh due meanwhile would run in the
           # hub's background, beside the requests timed.
           "MARQUEE_HUB_MEMBER_SNAPSHOT_S": "86400"}
    with open(log, "ab") as out:
        process = subprocess.Popen([str(BIN / "marquee-hub"), "serve", "--no-ingest", "--host", "127.0.0.1", "--port",
                                    str(port), "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the hub did not start: see {log}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(base: str, tokens: dict[str, str], found: list[tuple[str, str, dict[str, Any]]],
            requests: int) -> list[tuple[str, str, float, float, float, int]]:
    """(call, scope, first ms, p50 ms, p95 ms, rows) of each call as each viewer, after 3 warm-up requests."""
    results = []
    for scope, token in tokens.items():
        with httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"},
                          timeout=120) as client:
            for name, path, query in found:
                times = []
                for attempt in range(3 + requests):
                    started = time.perf_counter()
                    response = client.get(path, params=query)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise SystemExit(f"{name} as {scope}: {response.status_code} {response.text[:300]}")
                    if attempt == 0:
                        first, rows = elapsed, rows_of(response.json())
                    elif attempt >= 3:
                        times.append(elapsed)
                results.append((name, scope, first, percentile(times, 0.5), percentile(times, 0.95), rows))
                print(f"  {name:<28} {scope:<13} first {first:8.1f}  p50 {results[-1][3]:7.1f}  "
                      f"p95 {results[-1][4]:7.1f} ms  {rows:>6} rows", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per call and viewer")
    parser.add_argument("--schema", default="hq_bench")
    parser.add_argument("--keep", action="store_true", help="keep the schema, and reuse it when seeded alike")
    args = parser.parse_args()
    if not 3 <= args.sites <= 9999 or args.members < args.sites:
        parser.error("3 to 9,999 sites, and at least one member a site")
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    seeded = prepare(args, now)
    url = schema_url(args.schema)
    engine = make_engine(url)
    try:
        if seeded.get("kept"):  # ANALYZE again: another run may have written since
            counts(engine)
            vacuum(engine)
        with step("member snapshot refresh (members_snapshot.refresh, in the hub's background normally)"):
            members_snapshot.refresh(engine, now=datetime.now(UTC))
        tokens = users(engine, now)
        last_day = date.fromisoformat(seeded["last_day"])
        with engine.connect() as conn:
            film = conn.execute(sa.text("SELECT film FROM sales_daily WHERE day > :since GROUP BY film "
                                        "ORDER BY sum(tickets) DESC LIMIT 1"),
                                {"since": last_day - timedelta(days=30)}).scalar_one()
        found = calls(last_day, film)
        print(f"timing {len(found)} calls as each viewer, {args.requests} requests each "
              f"(load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}):")
        with hub(url, Path(f"/tmp/hq_scale_{args.schema}.log")) as base:
            results = measure(base, tokens, found, args.requests)
    finally:
        engine.dispose()
        if not args.keep:
            admin = sa.create_engine(ADMIN_URL)
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{args.schema}" CASCADE')
            admin.dispose()
    print("\n| call | scope | first ms | p50 ms | p95 ms | rows |\n|---|---|---|---|---|---|")
    for name, scope, first, p50, p95, rows in results:
        print(f"| {name} | {scope} | {first:.1f} | {p50:.1f} | {p95:.1f} | {rows} |")
    worst = max(results, key=lambda result: result[4])
    over = [result for result in results if result[4] > 100]
    print(f"\nworst p95 {worst[4]:.1f} ms ({worst[0]}, {worst[1]}); {len(over)} of {len(results)} calls over 100 ms"
          + (": " + ", ".join(f"{name} ({scope})" for name, scope, *_ in over) if over else ""))
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
