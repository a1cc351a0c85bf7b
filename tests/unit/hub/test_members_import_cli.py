"""`marquee-hub members import`: a CRM export moved over, re-runnable, refusals reported without values."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cloud.cli import main
from cloud.db.engine import make_engine
from cloud.db.schema import member_cards, member_ledger, members

PEPPER = "chain-pepper-for-tests-0123456789"
EXPORT = """\ufeffCustomer ID;First name;Last name;E-mail;Mobile;Date of birth;Points;Card kind;Card number
1001;Ottilie;Fenwick-Brandt;ottilie.fb@example.org;+44 20 7946 0001;24.12.1990;1500;em4100;0003887558
1002;Bartholomew;Quist;bq@example.org;+44 20 7946 0002;1985-02-03;0;member;M1234567890128
1003;Cressida;Vane;cressida at example;+44 20 7946 0003;;20;em4100;0003887558
1004;Dagobert;Fitch;df@example.org;+44 20 7946 0004;;7;em4100;000388755
"""


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {"MARQUEE_HUB_DATABASE_URL": db_url, "MARQUEE_HUB_PEPPER": PEPPER,
            "MARQUEE_HUB_MEMBER_KEY": base64.b64encode(os.urandom(32)).decode()}


def counts(db_url: str) -> tuple[int, int, int]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return tuple(int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                         for table in (members, member_cards, member_ledger))  # type: ignore[return-value]
    finally:
        engine.dispose()


def test_import_dry_run_then_for_real_then_again(env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    export = tmp_path / "crm.csv"
    export.write_text(EXPORT, encoding="utf-8")
    runner = CliRunner()
    dry = runner.invoke(main, ["members", "import", str(export), "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would import 2, skipped 0 already imported, refused 2 of 4 rows" in dry.stdout
    assert counts(db_url) == (0, 0, 0)
    for value in ("Cressida", "cressida at example", "000388755", "0003887558", "7946"):
        assert value not in dry.output

    report = tmp_path / "refused.csv"
    done = runner.invoke(main, ["members", "import", str(export), "--report", str(report)], env=env)
    assert done.exit_code == 0, done.output
    assert "imported 2, skipped 0 already imported, refused 2 of 4 rows" in done.stdout
    assert counts(db_url) == (2, 2, 1)  # one opening balance of 1500; a zero balance adds no row
    lines = report.read_text().splitlines()
    assert lines[0] == "line,problems" and [line.split(",")[0] for line in lines[1:]] == ["4", "5"]
    assert "Cressida" not in report.read_text() and "000388755" not in report.read_text()

    again = runner.invoke(main, ["members", "import", str(export)], env=env)
    assert "imported 0, skipped 2 already imported" in again.stdout
    assert counts(db_url) == (2, 2, 1)
