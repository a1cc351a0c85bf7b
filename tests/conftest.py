"""Fixtures every test folder may use: a private Mosquitto, a PostgreSQL database per test."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import Mosquitto, free_port

# Hubs started by tests sign their session cookies with this key rather than create a key file in the
# working directory (tests of the key file itself unset it).
os.environ.setdefault("MARQUEE_HUB_SESSION_KEY", secrets.token_urlsafe(32))

POSTGRES_ADMIN_URL = os.environ.get("MARQUEE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free port, owned by this test (set_tcp_nodelay, large queues)."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Mosquitto(port=free_port(), workdir=workdir)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the `test` PostgreSQL database, as an SQLAlchemy URL whose search_path is that schema."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(POSTGRES_ADMIN_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
