"""The dashboard page: sites and box office, rendered to one escaped HTML document."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from cloud.db.sites import SiteView
from cloud.db.stats import BoxOfficeRow

REFRESH_SECONDS = 5

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:2rem}
th,td{border:1px solid #ccc;padding:.3rem .7rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.online{color:#070}.offline{color:#a00}.attention{color:#a60}
"""


def money(minor_units: int, currency: str) -> str:
    """Minor units as `1234.50 EUR` (two decimals, as for every currency the chains use today)."""
    sign = "-" if minor_units < 0 else ""
    whole, cents = divmod(abs(minor_units), 100)
    return f"{sign}{whole}.{cents:02d} {currency}"


def _cell(value: object, *, num: bool = False, css: str | None = None) -> str:
    classes = " ".join(name for name in ("num" if num else None, css) if name)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{escape(str(value))}</td>"


def _table(headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}">{escape(empty)}</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sites_table(sites: Sequence[SiteView]) -> str:
    rows = (
        "<tr>"
        + _cell(site.site_id)
        + _cell("online" if site.online else "offline", css="online" if site.online else "offline")
        + _cell(site.last_seen.strftime("%Y-%m-%d %H:%M:%S UTC") if site.last_seen else "never")
        + _cell(site.events_held, num=True)
        + _cell(len(site.devices), num=True)
        + _cell("; ".join(_attention(site)) or "-", css="attention" if _attention(site) else None)
        + "</tr>"
        for site in sites
    )
    headers = ["Site", "State", "Last seen", "Events held", "Devices", "Needs attention"]
    return _table(headers, rows, "No site has reported yet.")


def _attention(site: SiteView) -> list[str]:
    """What an operator should look at on a site's boxes: conflicts, lost events, keys, devices down."""
    notes = []
    for device in site.devices:
        if device.revoked:
            notes.append(f"{device.device_id}: revoked")
        elif not device.registered:
            notes.append(f"{device.device_id}: no key registered")
        if device.conflict:
            notes.append(f"{device.device_id}: chain conflict (marquee-hub devices conflicts)")
        if device.lost_events:
            reasons = sorted({gap.reason for gap in device.recent_gaps})
            notes.append(f"{device.device_id}: {device.lost_events} lost event(s) ({', '.join(reasons)})")
        if device.online:  # an offline box's last report says nothing about its readers now
            down = [p.name for p in device.peripherals if p.state == "down"]
            if down:
                notes.append(f"{device.device_id}: {', '.join(down)} down")
    return notes


def _box_office_table(label: str, rows: Sequence[BoxOfficeRow]) -> str:
    html_rows = (
        "<tr>"
        + _cell(row.key or "(none)")
        + _cell(row.tickets, num=True)
        + _cell(money(row.revenue, row.currency), num=True)
        + _cell(row.sales, num=True)
        + "</tr>"
        for row in rows
    )
    return _table([label, "Tickets", "Revenue", "Sales"], html_rows, "No sales yet.")


def render_dashboard(
    *,
    sites: Sequence[SiteView],
    by_site: Sequence[BoxOfficeRow],
    by_film: Sequence[BoxOfficeRow],
    generated_at: datetime,
) -> str:
    """The whole page; every value from the database goes through html.escape."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Marquee HQ</title><style>{_STYLE}</style></head><body>"
        "<h1>Marquee HQ</h1>"
        f"<p>Updated {escape(generated_at.strftime('%Y-%m-%d %H:%M:%S UTC'))}</p>"
        f"<h2>Sites</h2>{_sites_table(sites)}"
        f"<h2>Box office by site</h2>{_box_office_table('Site', by_site)}"
        f"<h2>Box office by film</h2>{_box_office_table('Film', by_film)}"
        "</body></html>\n"
    )
