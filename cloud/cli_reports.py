"""`marquee-hub report` (monthly, quarterly and annual reports as files) and `marquee-hub export` (every sale of
a range of days), read straight from the hub's database, no HTTP. Both are recorded in the HQ audit log as the
operator's (`cli:<login>`)."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import sqlalchemy as sa

from cloud.cli_support import hub_engine
from protocol.ids import is_valid_id

if TYPE_CHECKING:  # the commands load the report modules (and FastAPI's) only when they run
    from cloud.reports.periods import PeriodKind

FORMATS = click.Choice(["csv", "xlsx"])
EXPORT_FORMATS = click.Choice(["csv", "jsonl"])


@dataclass(frozen=True, slots=True)
class Operator:
    """Who ran a command, for the HQ audit log: the shell's login (the hub's database is theirs to read)."""

    username: str
    role: str = "admin"
    via: str = "cli"
    client: str | None = None


def _operator() -> Operator:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        login = "unknown"
    return Operator(f"cli:{login}"[:64])


def _on_db(work: Callable[[sa.Engine], Any]) -> Any:
    """Run `work` with an engine over the configured (migrated) database; errors as one clear line."""
    with hub_engine() as engine:
        return work(engine)


def _write(output: Path, chunks: Any) -> None:
    """Write `chunks` to `output` through a temporary file beside it: no half file under the name asked for."""
    partial = output.with_name(output.name + ".part")
    try:
        with open(partial, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _output(path: Path) -> Path:
    """The file to write, refused before any work when its folder does not exist."""
    if not path.parent.is_dir():
        raise click.BadParameter(f"no folder {path.parent}", param_hint="--output")
    return path


def _site(value: str | None) -> str | None:
    if value is not None and not is_valid_id(value):
        raise click.BadParameter("a site id: lower-case letters, digits, - and _", param_hint="--site")
    return value


@click.group()
def report() -> None:
    """Periodic reports (monthly, quarterly, annual) as CSV or XLSX files.

    \b
    Example:
        marquee-hub report month 2026-11 --format xlsx --output november.xlsx
    """


def _report_command(kind: PeriodKind, example: str) -> click.Command:
    @click.argument("period")
    @click.option("--site", help="One site (default: every site, with loyalty liability and enrolments).")
    @click.option("--format", "format_", type=FORMATS, default="xlsx", show_default=True)
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
                  help="The file to write.")
    def command(period: str, site: str | None, format_: str, output: Path) -> None:
        from cloud.access.audit import record_action
        from cloud.reports.build import periodic_report
        from cloud.reports.files import report_csv, report_xlsx
        from cloud.reports.periods import check_kind, parse_period
        from cloud.reports.tables import report_tables

        try:
            chosen = parse_period(period)
            check_kind(chosen, kind)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="PERIOD") from exc
        site_id = _site(site)
        _output(output)

        def work(engine: sa.Engine) -> Any:
            with engine.begin() as conn:
                made = periodic_report(conn, period=chosen, sites=frozenset((site_id,)) if site_id else None,
                                       site_id=site_id, now=datetime.now(UTC))
                record_action(conn, actor=_operator(), action="report.download", target=f"{kind} {chosen.key}",
                              site_id=site_id, detail={"period": chosen.key, "site": site_id, "format": format_})
            return made

        made = _on_db(work)
        tables = report_tables(made)
        _write(output, [report_csv(tables) if format_ == "csv" else report_xlsx(tables)])
        click.echo(f"wrote the {kind} report {chosen.key} ({site_id or 'every site'}) to {output}")

    command.__doc__ = f"""Write the {kind}'s report ({example}) as a CSV or XLSX file: box office, occupancy,
    concessions, members, loyalty liability (chain-wide only) and complaints, against the {kind} before.

    \b
    Example:
        marquee-hub report {kind} {example} --format xlsx --output report.xlsx
        marquee-hub report {kind} {example} --site riverside --format csv --output riverside.csv
    """
    return report.command(name=kind)(command)


_report_command("month", "2026-11")
_report_command("quarter", "2026-Q4")
_report_command("year", "2026")


@click.group()
def export() -> None:
    """Exports of raw figures: every sale of a range of days, as CSV or JSON Lines.

    \b
    Example:
        marquee-hub export transactions --from 2026-11-01 --to 2026-11-30 --output november.csv
    """


@export.command(name="transactions")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First local day.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last local day, included.")
@click.option("--site", "sites", multiple=True, help="A site (repeat it; default: every site).")
@click.option("--till", help="One till's sales only.")
@click.option("--cashier", help="One cashier's sales only.")
@click.option("--film", help="Sales with a ticket for this film only (any case).")
@click.option("--member", help="One member's sales only (member id).")
@click.option("--format", "format_", type=EXPORT_FORMATS, default="csv", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The file to write.")
def export_transactions(first: datetime, last: datetime, sites: tuple[str, ...], till: str | None,
                        cashier: str | None, film: str | None, member: str | None, format_: str,
                        output: Path) -> None:
    """Write every sale of local days --from..--to (each site's own days) to a file, oldest first, with a
    progress bar; read in pages straight from the database, so any number of rows fits in little memory.

    \b
    Example:
        marquee-hub export transactions --from 2026-11-01 --to 2026-11-30 --output november.csv
        marquee-hub export transactions --from 2026-11-01 --to 2026-11-01 --site riverside --format jsonl \\
            --output riverside.jsonl
    """
    from cloud.access.audit import record_action
    from cloud.reports.export import ExportQuery, expected_rows, export_pages, plan_scan
    from cloud.reports.export_files import ExportFormat, export_chunks

    first_day, last_day = first.date(), last.date()
    if last_day < first_day:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    if not date(2000, 1, 1) <= first_day <= last_day <= date(2099, 12, 31):
        raise click.BadParameter("days between 2000-01-01 and 2099-12-31", param_hint="--from/--to")
    for site in sites:
        _site(site)
    _output(output)
    query = ExportQuery(first_day=first_day, last_day=last_day, sites=frozenset(sites) if sites else None, till=till,
                        cashier=cashier, film=film, member=member)

    def work(engine: sa.Engine) -> int:
        with engine.begin() as conn:
            scan = plan_scan(conn, query=query)
            expected = expected_rows(conn, query=query)
            record_action(conn, actor=_operator(), action="export.transactions", target=f"{first_day}..{last_day}",
                          detail={**query.audit_detail(), "format": format_, "expected_rows": expected})
        written = 0

        def counted() -> Any:
            nonlocal written
            with click.progressbar(length=expected, label="exporting", file=sys.stderr) as bar:
                for rows in export_pages(engine, query=query, scan=scan):
                    written += len(rows)
                    bar.update(len(rows))
                    yield rows

        _write(output, export_chunks(counted(), cast("ExportFormat", format_)))
        return written

    written = _on_db(work)
    click.echo(f"wrote {written} sales to {output}")
