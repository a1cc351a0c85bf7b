"""Fixtures of the hub's unit tests (real SQLite and PostgreSQL, no broker)."""

from tests.unit.hub.factories import db_url, engine

__all__ = ["db_url", "engine"]
