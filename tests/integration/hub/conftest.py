"""Fixtures of the hub's integration tests."""

from tests.unit.hub.factories import db_url, engine

__all__ = ["db_url", "engine"]
