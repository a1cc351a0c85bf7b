"""`marquee-hub` through click's CliRunner: help with examples, migrate, user add, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.cli import main
from cloud.db.engine import make_engine, migrate
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from protocol.signing import public_key_text
from tests.unit.hub.factories import T0, Chain


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_has_help_with_an_example() -> None:
    commands = all_commands(main)
    assert {("serve",), ("migrate",), ("user", "add")} <= set(commands)
    for path in commands:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example:" in result.output and "marquee-hub" in result.output, path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MARQUEE_HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}


def test_migrate_then_user_add_then_sign_in(env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"], env=env).exit_code == 0

    added = runner.invoke(
        main, ["user", "add", "bob", "--role", "admin", "--password-stdin"], input="a long secret\n", env=env
    )
    twice = runner.invoke(
        main, ["user", "add", "bob", "--role", "admin", "--password-stdin"], input="a long secret\n", env=env
    )

    assert added.exit_code == 0, added.output
    assert twice.exit_code == 1 and "exists already" in twice.output
    app = create_app(HubSettings(database_url=env["MARQUEE_HUB_DATABASE_URL"]), start_ingest=False)
    with TestClient(app) as client:
        assert client.get("/api/v1/sites", auth=("bob", "a long secret")).status_code == 200
        assert client.get("/api/v1/sites", auth=("bob", "a long secreT")).status_code == 401


def test_user_add_prompts_and_refuses_weak_passwords(env: dict[str, str]) -> None:
    runner = CliRunner()
    empty = runner.invoke(
        main, ["user", "add", "eve", "--role", "analyst", "--password-stdin"], input="\n", env=env
    )
    short = runner.invoke(main, ["user", "add", "eve", "--role", "analyst"], input="short\nshort\n", env=env)
    prompted = runner.invoke(
        main,
        ["user", "add", "eve", "--role", "analyst"],
        input="long enough pw\nlong enough pw\n",
        env=env,
    )
    bad_role = runner.invoke(main, ["user", "add", "eve", "--role", "root"], env=env)

    assert empty.exit_code == 1 and "empty" in empty.output
    assert short.exit_code == 1 and "at least" in short.output
    assert prompted.exit_code == 0, prompted.output
    assert bad_role.exit_code == 2


def test_user_add_takes_a_site_manager_with_sites_only(env: dict[str, str]) -> None:
    def add(*args: str) -> Result:
        return CliRunner().invoke(main, ["user", "add", *args, "--password-stdin"], input="long enough pw\n", env=env)

    no_site = add("sam", "--role", "site_manager")
    analyst_with_site = add("ann", "--role", "analyst", "--site", "riverside")
    bad_site = add("sam", "--role", "site_manager", "--site", "River Side")
    added = add("sam", "--role", "site_manager", "--site", "riverside", "--site", "harbour")
    help_text = CliRunner().invoke(main, ["user", "add", "--help"]).output

    assert no_site.exit_code == 1 and no_site.output == "Error: a site manager needs at least one site\n"
    assert analyst_with_site.exit_code == 1 and "takes no sites" in analyst_with_site.output
    assert bad_site.exit_code == 1 and len(bad_site.output.strip().splitlines()) == 1
    assert added.exit_code == 0 and added.output == "user sam added with role site_manager for harbour, riverside\n"
    assert "--role [admin|analyst|site_manager]" in help_text


def test_bad_config_and_unreachable_database_fail_with_one_line() -> None:
    runner = CliRunner()
    bad_port = runner.invoke(main, ["serve"], env={"MARQUEE_HUB_HTTP_PORT": "http"})
    no_db = runner.invoke(
        main,
        ["migrate"],
        env={"MARQUEE_HUB_DATABASE_URL": "postgresql+psycopg://x@127.0.0.1:1/none?connect_timeout=2"},
    )

    assert bad_port.exit_code == 1 and "http_port" in bad_port.output
    assert no_db.exit_code == 1 and no_db.output.startswith("Error: cannot migrate")
    assert len(no_db.output.strip().splitlines()) == 1


def test_devices_add_list_revoke_with_clear_refusals(env: dict[str, str]) -> None:
    runner = CliRunner()
    key = public_key_text(Ed25519PrivateKey.generate())
    other = public_key_text(Ed25519PrivateKey.generate())

    def run(*args: str) -> Result:
        return runner.invoke(main, ["devices", *args], env=env)

    added = run("add", "--site", "riverside", "--device", "riverside-box1", "--public-key", key)
    again = run("add", "--site", "riverside", "--device", "riverside-box1", "--public-key", key)
    clash = run("add", "--site", "riverside", "--device", "riverside-box1", "--public-key", other)
    moved = run("add", "--site", "harbour", "--device", "riverside-box1", "--public-key", key)
    garbage = run("add", "--site", "riverside", "--device", "riverside-box2", "--public-key", "ssh-rsa AAAA")
    bad_id = run("add", "--site", "River Side", "--device", "riverside-box2", "--public-key", key)
    listed = run("list", "--json")

    assert added.exit_code == 0 and "registered" in added.output, added.output
    assert again.exit_code == 0 and "unchanged" in again.output
    assert clash.exit_code == 1 and "--replace-key" in clash.output
    assert moved.exit_code == 1 and "never moves to another site" in moved.output
    assert garbage.exit_code == 1 and "--public-key" in garbage.output
    assert bad_id.exit_code == 2
    assert json.loads(listed.output) == {
        "site_id": "riverside", "device_id": "riverside-box1", "public_key": key, "state": "ok", "last_seq": 0,
        "lost_events": 0, "conflict": None,
    }

    revoked = run("revoke", "riverside-box1")
    twice = run("revoke", "riverside-box1")
    rekeyed = run("add", "--site", "riverside", "--device", "riverside-box1", "--public-key", other, "--replace-key")
    assert revoked.exit_code == 0 and twice.exit_code == 1
    assert rekeyed.exit_code == 0 and "key replaced" in rekeyed.output
    assert json.loads(run("list", "--json").output)["state"] == "ok"
    assert run("conflicts").output.strip() == "no chain conflict"
    unresolvable = run("resolve", "riverside-box1", "--keep", "hub")
    assert unresolvable.exit_code == 1 and "no open chain conflict" in unresolvable.output


def test_a_conflict_is_listed_and_resolved_from_the_command_line(env: dict[str, str]) -> None:
    engine = make_engine(env["MARQUEE_HUB_DATABASE_URL"])
    migrate(engine)
    box = Chain("riverside", "riverside-box1")
    box.register(engine)
    box.sales(2)
    clone = Chain("riverside", "riverside-box1", key=box.key)
    clone.sales(2)
    with engine.begin() as conn:
        ingest_batch(conn, batch=box.batch(1, 2), site_id="riverside", received_at=T0)
    with engine.begin() as conn:
        ingest_batch(conn, batch=clone.batch(1, 2), site_id="riverside", received_at=T0)
    engine.dispose()
    runner = CliRunner()

    listed = runner.invoke(main, ["devices", "conflicts"], env=env)
    resolved = runner.invoke(main, ["devices", "resolve", "riverside-box1", "--keep", "hub", "--note", "clone"],
                             env=env)
    history = runner.invoke(main, ["devices", "conflicts", "--all"], env=env)

    assert f"riverside-box1 seq 1: held {box.events[0].hash} received {clone.events[0].hash}" in listed.output
    assert "open" in listed.output
    assert resolved.exit_code == 0 and "1 conflict(s) resolved keeping the hub's chain" in resolved.output
    assert "resolved (hub)" in history.output
    assert runner.invoke(main, ["devices", "conflicts"], env=env).output.strip() == "no chain conflict"
