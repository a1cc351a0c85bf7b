"""`marquee-hub report` and `marquee-hub export` write their files straight from the database."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import sqlalchemy as sa
from click.testing import CliRunner

from cloud.cli import main
from cloud.db.access_tables import hq_audit
from cloud.db.engine import make_engine, migrate
from tests.unit.hub.report_seed import seed_chain


def test_report_and_export_files(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    migrate(engine)
    seed_chain(engine)
    env = {"MARQUEE_HUB_DATABASE_URL": url}
    runner = CliRunner()

    month = runner.invoke(main, ["report", "month", "2024-11", "--output", str(tmp_path / "nov.xlsx")], env=env)
    site = runner.invoke(main, ["report", "quarter", "2024-Q4", "--site", "site-b", "--format", "csv",
                                "--output", str(tmp_path / "q4.csv")], env=env)
    exported = runner.invoke(main, ["export", "transactions", "--from", "2024-11-01", "--to", "2024-11-30",
                                    "--output", str(tmp_path / "nov.csv")], env=env)

    assert month.exit_code == 0, month.output
    book = openpyxl.load_workbook(tmp_path / "nov.xlsx")
    totals = [row for row in book["Box office by site"].iter_rows(values_only=True) if row[0] == "Total"]
    assert [(row[2], round(row[3] * 100), row[4]) for row in totals] == [(13, 13400, 6)]
    assert site.exit_code == 0, site.output
    rows = list(csv.reader((tmp_path / "q4.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert ["Total", "EUR", "7", "64.00", "3", "9.14"] in rows  # October's sale and November's two
    assert exported.exit_code == 0, exported.output
    assert "wrote 6 sales to" in exported.stdout and "exporting" in exported.stderr  # the progress bar
    sales = list(csv.DictReader((tmp_path / "nov.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert [row["sale_id"] for row in sales] == ["a-1", "a-2", "a-3", "a-4", "b-2", "b-3"]
    assert not list(tmp_path.glob("*.part"))
    with engine.connect() as conn:
        audit = conn.execute(sa.select(hq_audit.c.action, hq_audit.c.via, hq_audit.c.site_id)
                             .order_by(hq_audit.c.id)).all()
    assert [tuple(row) for row in audit] == [("report.download", "cli", None), ("report.download", "cli", "site-b"),
                                             ("export.transactions", "cli", None)]
    engine.dispose()


def test_a_period_of_another_kind_is_refused(tmp_path: Path) -> None:
    env = {"MARQUEE_HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}

    result = CliRunner().invoke(main, ["report", "month", "2024-Q4", "--output", str(tmp_path / "x.xlsx")], env=env)
    backwards = CliRunner().invoke(main, ["export", "transactions", "--from", "2024-11-30", "--to", "2024-11-01",
                                          "--output", str(tmp_path / "x.csv")], env=env)

    assert result.exit_code == 2 and "2024-Q4 is not a month" in result.output
    assert backwards.exit_code == 2 and "must not be before --from" in backwards.output
    assert not (tmp_path / "x.xlsx").exists() and not (tmp_path / "x.csv").exists()
