"""`marquee-hub analytics`: the box-office and occupancy rollups, rebuilt from the stored events."""

from __future__ import annotations

import time
from datetime import datetime

import click

from cloud.cli_support import cli_settings, hub_engine


@click.group()
def analytics() -> None:
    """The box-office and occupancy rollups: rebuild them from the stored events.

    \b
    Example:
        marquee-hub analytics rebuild
    """


@analytics.command(name="rebuild")
@click.option("--site", help="Only this site (default: every site).")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="First local day to rebuild.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last local day to rebuild, included.")
def rebuild(site: str | None, first: datetime | None, last: datetime | None) -> None:
    """Recompute the rollups from the stored events: after a site's time zone was corrected, or for events
    stored before the rollups existed. Site by site, each site's days replaced in one transaction; safe while
    the hub ingests (that site's batches wait for its transaction, nothing is lost or counted twice).

    \b
    Example:
        marquee-hub analytics rebuild --site riverside --from 2026-03-01 --to 2026-03-31
    """
    from cloud.analytics.rebuild import rebuild_site, site_ids

    if first is not None and last is not None and first > last:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    settings = cli_settings()
    started = time.monotonic()
    shown = [0.0]

    def progress(site_id: str, sales: int) -> None:
        if time.monotonic() - shown[0] >= 1.0:  # a line a second at most
            shown[0] = time.monotonic()
            click.echo(f"  {site_id}: {sales} sales read", err=True)

    with hub_engine(settings) as engine:
        with engine.connect() as conn:
            sites = site_ids(conn, site_id=site)
        total = 0
        for index, site_id in enumerate(sites, start=1):
            done = rebuild_site(engine, site_id=site_id, first=first.date() if first else None,
                                last=last.date() if last else None, progress=progress)
            total += done.sales
            again = " (read again under lock: its chain or time zone changed meanwhile)" if done.reread else ""
            click.echo(f"[{index}/{len(sites)}] {site_id}: {done.sales} sales, {done.rows} rollup rows{again}")
    click.echo(f"rebuilt {len(sites)} site(s) from {total} sales in {time.monotonic() - started:.1f} s")


@analytics.command(name="rebuild-members")
def rebuild_members_command() -> None:
    """Recompute every member's activity (visits, spend, intervals, segments' counts) from the stored sales: for
    sales stored before the member analytics existed. Run it with the hub's ingest stopped (the tables are
    emptied first, then filled again page by page).

    \b
    Example:
        marquee-hub analytics rebuild-members
    """
    from cloud.analytics.members_rebuild import rebuild_members

    settings = cli_settings()
    started = time.monotonic()
    shown = [0.0]

    def progress(sales: int) -> None:
        if time.monotonic() - shown[0] >= 1.0:  # a line a second at most
            shown[0] = time.monotonic()
            click.echo(f"  {sales} sales read", err=True)

    with hub_engine(settings) as engine:
        total = rebuild_members(engine, progress=progress)
    click.echo(f"rebuilt the member analytics from {total} sales in {time.monotonic() - started:.1f} s")
