"""`marquee-hub members`: the member key, and moving an existing CRM's members and balances over."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from cloud.cli_support import cli_settings, hub_engine
from cloud.errors import HubError, MemberError

CHUNK = 100
"""Rows per committed transaction: an interrupted import keeps what it did and resumes by external id; short,
since each holds the member directory's version row, which ingest of card sales waits on."""


@click.group()
def members() -> None:
    """Members: the key that seals their personal data, and imports from another CRM.

    The member key (MARQUEE_HUB_MEMBER_KEY_FILE, or MARQUEE_HUB_MEMBER_KEY) seals every member's personal
    data and never enters the database; the card pepper (MARQUEE_HUB_PEPPER) is the boxes' own, so a card
    enrolled here is the card a till reads.

    \b
    Example:
        marquee-hub members key
        marquee-hub members import crm-export.csv --dry-run
    """


@members.command(name="key")
def members_key() -> None:
    """Create the member key file if there is none (0600); keep a copy offline: without it no member's
    personal data can be read again.

    \b
    Example:
        marquee-hub members key
    """
    from cloud.members.vault import create_member_key_file, read_member_key_file

    settings = cli_settings()
    path = settings.member_key_file
    created = create_member_key_file(path)
    try:
        read_member_key_file(path)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{'created' if created else 'kept the existing'} member key {path}")


@members.command(name="import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option("--encoding", default="utf-8", show_default=True, help="The file's text encoding (e.g. cp1251).")
@click.option("--card-kind", type=click.Choice(["em4100", "wiegand", "nfc", "magstripe", "member"]),
              help="The kind of a card number given without one.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the refused rows (line and reasons, never their values) to this CSV file.")
def members_import(csv_file: Path, dry_run: bool, encoding: str, card_kind: str | None, report: Path | None) -> None:
    """Import members, their cards and balances from a CRM export (CSV with a header row; docs/cli.md lists
    the columns). Rows already imported (same external id) are skipped, so an interrupted import can be run
    again. Refused rows are listed by line with their reasons, never their values.

    \b
    Example:
        marquee-hub members import crm-export.csv --dry-run
        marquee-hub members import crm-export.csv --report refused.csv
    """
    from cloud.members.importer import count_rows, read_members
    from cloud.members.store import card_context, check_enrol, enrol
    from cloud.members.vault import vault_from_settings

    settings = cli_settings()
    try:
        vault = vault_from_settings(settings.member_key, settings.member_key_file)
        cards = card_context(settings.pepper, settings.card_em4100)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    total = count_rows(csv_file, encoding=encoding)
    counts = {"imported": 0, "skipped": 0, "refused": 0}
    refused: list[tuple[int, str]] = []
    with hub_engine(settings) as engine:
        try:
            with csv_file.open(encoding=encoding, newline="") as stream, \
                    click.progressbar(length=total, label="members", file=sys.stderr) as bar, engine.connect() as conn:
                pending = 0
                for row in read_members(stream, cards.scheme, default_card_kind=card_kind):  # type: ignore[arg-type]
                    if row.draft is None:
                        if row.line > 1:
                            bar.update(1)
                        counts["refused"] += 1 if row.line > 1 else 0
                        refused.append((row.line, "; ".join(row.problems)))
                        continue
                    bar.update(1)
                    try:
                        # A MemberError is raised before enrol writes anything: the transaction goes on. A dry
                        # run only checks, so that it holds no lock ingest would wait on.
                        if dry_run:
                            check_enrol(conn, cards, row.draft)
                        else:
                            enrol(conn, vault, cards, row.draft, at=datetime.now(UTC), by="import")
                    except MemberError as exc:
                        if exc.kind == "conflict" and str(exc).startswith("external_id"):
                            counts["skipped"] += 1
                        else:
                            counts["refused"] += 1
                            refused.append((row.line, str(exc)))
                        continue
                    counts["imported"] += 1
                    pending += 1
                    if pending >= CHUNK and not dry_run:
                        conn.commit()
                        pending = 0
                conn.commit()  # a dry run wrote nothing
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"{csv_file} is not {encoding} text (byte {exc.start}); "
                                       "give its encoding with --encoding") from exc
    for line, problems in refused[:50]:
        click.echo(f"line {line}: {problems}", err=True)
    if len(refused) > 50:
        click.echo(f"... and {len(refused) - 50} more refused rows (see --report)", err=True)
    if report is not None:
        import csv

        with report.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "problems"])
            writer.writerows(refused)
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {counts['imported']}, skipped {counts['skipped']} already imported, "
               f"refused {counts['refused']} of {total} rows")
