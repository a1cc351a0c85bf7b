"""Schemathesis over the hub's whole OpenAPI document: generated requests (valid and invalid) against every
operation of a real app over a seeded database, as an admin. No answer may be a server error, and every answer
must match what the document declares (status code, content type, body schema)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import create_signing_key
from cloud.db.users import add_user
from cloud.ingest.store import ingest_batch
from cloud.members.vault import create_member_key_file
from cloud.settings import HubSettings
from tests.unit.hub.factories import T0, Chain

ADMIN = ("fuzz-admin", "fuzz admin password")
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
STREAMS = frozenset({"/api/v1/live"})
"""Endpoints that answer with an endless stream (tests/unit/hub/test_live_feed.py covers them)."""
EXAMPLES = 8
"""Examples per operation (valid and invalid ones): about a hundred operations in about ten seconds."""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """A hub app over a fresh SQLite database with an admin and sales at two sites (its lifespan running)."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    settings = HubSettings(database_url=f"sqlite:///{folder / 'hub.db'}", demo=True,
                           rules_key_file=folder / "rules.key", member_key_file=folder / "members.key",
                           pepper=SecretStr("fuzz-pepper-" + "x" * 32))
    create_signing_key(settings.rules_key_file)  # so that publishing a bundle and sealing a profile work
    create_member_key_file(settings.member_key_file)
    app = create_app(settings, start_ingest=False)
    with TestClient(app):  # the lifespan: migrations, the probe
        engine = app.state.engine
        with engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
        for site in ("site-a", "site-b"):
            chain = Chain(site, f"box-{site}")
            chain.sales(3)
            chain.register(engine)
            with engine.begin() as conn:
                ingest_batch(conn, batch=chain.batch(1, 3), site_id=site, received_at=datetime.now(UTC))
        yield app


def test_no_server_error_and_every_answer_as_declared(hub: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", hub)
    headers = {"Authorization": "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS:
            continue
        operations += 1

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert operations > 50, "the OpenAPI document lost its operations"
    assert not failures, "\n\n".join(failures)
