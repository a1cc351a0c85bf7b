"""What a technician and an operator see of the box's files: keys, modes, the pepper's file, status.

The real `marquee-edge` program, in a subprocess with the umask a shell usually has (022).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from edge.store.bootstrap import open_identity
from protocol.signing import public_key_text
from tests.edge_support import edge_settings, new_journal, write_config
from tests.unit.edge.test_journal import append_sale

EDGE = str(Path(sys.executable).parent / "marquee-edge")


def edge(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE, *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=lambda: os.umask(0o022))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_private_keys_and_prints_the_command_that_registers_the_box(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    config = write_config(tmp_path / "edge.toml", settings)

    done = edge("init", "--config", str(config))
    shown = edge("identity", "--config", str(config))

    assert done.returncode == 0, done.stderr
    assert shown.returncode == 0 and shown.stdout.startswith("ed25519:")
    key = shown.stdout.strip()
    assert (f"marquee-hub devices add --site riverside --device riverside-box1 --public-key {key}"
            in done.stdout)
    private = serialization.load_pem_private_key(settings.identity_path.read_bytes(), password=None)
    assert public_key_text(private) == key  # type: ignore[arg-type]
    assert mode(settings.data_dir) == 0o700 and mode(settings.key_path.parent) == 0o700
    assert mode(settings.key_path) == 0o600 and mode(settings.identity_path) == 0o600
    again = edge("init", "--config", str(config))
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert edge("identity", "--config", str(config)).stdout.strip() == key


def test_the_journal_and_its_folder_are_private_whatever_the_umask(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    new_journal(settings).close()
    settings.data_dir.chmod(0o755)  # as an older version left them
    (settings.data_dir / "journal.db").chmod(0o644)
    previous = os.umask(0o022)
    try:
        journal = new_journal(settings)
        append_sale(journal, "S-1")
        files = sorted(settings.data_dir.glob("journal.db*"))
        assert [path.name for path in files] == ["journal.db", "journal.db-shm", "journal.db-wal"]
        assert {path.name: mode(path) for path in files} == dict.fromkeys((p.name for p in files), 0o600)
        assert mode(settings.data_dir) == 0o700
        journal.close()
    finally:
        os.umask(previous)


def test_a_world_readable_file_holding_the_pepper_is_refused_with_the_fix(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edge.toml", edge_settings(tmp_path))
    config.chmod(0o644)

    refused = edge("identity", "--config", str(config))
    config.chmod(0o640)
    accepted = edge("init", "--config", str(config))

    assert refused.returncode != 0
    assert "readable" in refused.stderr and f"chmod 600 {config}" in refused.stderr
    assert "MARQUEE_EDGE_PEPPER" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr


def test_status_reads_beside_an_agent_in_the_middle_of_a_write(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    config = write_config(tmp_path / "edge.toml", settings)
    journal = new_journal(settings)
    for n in range(3):
        append_sale(journal, f"S-{n}")
    journal.mark_acked(1)
    writer = sqlite3.connect(settings.journal_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # what the agent holds while it commits a sale
    try:
        started = time.monotonic()
        shown = edge("status", "--config", str(config), "--json", timeout=20)
        took = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        journal.close()
    assert shown.returncode == 0, shown.stderr
    assert '"last_seq": 3' in shown.stdout and '"backlog": 2' in shown.stdout and '"quarantined": 0' in shown.stdout
    assert took < 5  # a writer would have waited on the lock (busy timeout 10 s) and then failed


def test_status_without_a_journal_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edge.toml", edge_settings(tmp_path))
    shown = edge("status", "--config", str(config))
    assert shown.returncode != 0 and "no journal" in shown.stderr
    assert not (tmp_path / "data" / "journal.db").exists()


def test_a_box_that_lost_its_identity_makes_a_new_one_and_says_how_to_register_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = edge_settings(tmp_path)
    first = open_identity(settings, create=True)
    settings.identity_path.unlink()

    second = open_identity(settings, create=True)

    assert public_key_text(second) != public_key_text(first)
    assert public_key_text(open_identity(settings, create=False)) == public_key_text(second)
    warning = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"][-1]
    assert f"--public-key {public_key_text(second)}" in warning and "marquee-hub devices add" in warning
