"""`marquee-hub` through click's CliRunner: help with examples, migrate, user add, clear failures."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.cli import main
from cloud.settings import HubSettings


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


def test_user_add_refuses_site_manager_with_one_line(env: dict[str, str]) -> None:
    refused = CliRunner().invoke(
        main,
        ["user", "add", "sam", "--role", "site_manager", "--password-stdin"],
        input="long enough pw\n",
        env=env,
    )
    help_text = CliRunner().invoke(main, ["user", "add", "--help"]).output

    assert refused.exit_code == 1
    assert refused.output.startswith("Error: role 'site_manager' is not supported yet")
    assert len(refused.output.strip().splitlines()) == 1
    assert "--role [admin|analyst]" in help_text


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
