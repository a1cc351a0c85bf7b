"""`marquee-hub user` and `marquee-hub token` through click's CliRunner on a real SQLite database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cloud.access.audit import list_actions
from cloud.access.lockout import LockoutPolicy, record_failure
from cloud.access.tokens import parse_token, token_user
from cloud.cli import main
from cloud.db.engine import make_engine


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MARQUEE_HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env=env)


def test_users_are_listed_changed_disabled_and_unlocked_and_each_change_is_audited(env: dict[str, str]) -> None:
    assert run(env, "user", "add", "sam", "--role", "site_manager", "--site", "riverside", "--password-stdin",
               stdin="long enough pw\n").exit_code == 0
    engine = make_engine(env["MARQUEE_HUB_DATABASE_URL"])
    try:
        with engine.begin() as conn:  # three wrong passwords, as a login would count them
            for _ in range(3):
                record_failure(conn, username="sam", now=datetime.now(UTC),
                               policy=LockoutPolicy(3, timedelta(minutes=15)))
        locked = json.loads(run(env, "user", "list", "--json").output)
        moved = run(env, "user", "set", "sam", "--site", "harbour", "--site", "riverside")
        disabled = run(env, "user", "set", "sam", "--disable")
        nothing = run(env, "user", "set", "sam")
        unlocked = run(env, "user", "unlock", "sam")
        password = run(env, "user", "password", "sam", "--password-stdin", stdin="a brand new pw\n")
        weak = run(env, "user", "password", "sam", "--password-stdin", stdin="short\n")
        unknown = run(env, "user", "unlock", "nobody")
        listed = run(env, "user", "list").output
        with engine.connect() as conn:
            actions = [(row.action, row.username, row.via) for row in list_actions(conn)]
    finally:
        engine.dispose()

    assert locked["locked_until"] is not None and locked["sites"] == ["riverside"]
    assert moved.exit_code == 0 and "harbour,riverside" in moved.output
    assert disabled.exit_code == 0 and "disabled" in disabled.output
    assert nothing.exit_code == 1 and "nothing to change" in nothing.output
    assert unlocked.exit_code == 0 and password.exit_code == 0
    assert weak.exit_code == 1 and "at least" in weak.output
    assert unknown.exit_code == 1 and unknown.output == "Error: no user 'nobody'\n"
    assert listed.split()[:3] == ["sam", "site_manager", "disabled"]
    assert [action for action, _, _ in actions] == ["user.update", "user.unlock", "user.update", "user.update",
                                                    "user.create"]
    assert all(username.startswith("cli:") and via == "cli" for _, username, via in actions)


def test_tokens_are_issued_once_listed_without_secret_and_revoked(env: dict[str, str]) -> None:
    assert run(env, "user", "add", "bot", "--role", "analyst", "--password-stdin",
               stdin="long enough pw\n").exit_code == 0
    issued = run(env, "token", "issue", "--user", "bot", "--name", "BI nightly", "--days", "30")
    no_user = run(env, "token", "issue", "--user", "nobody", "--name", "x")
    text = issued.stdout.strip()
    parsed = parse_token(text)
    assert issued.exit_code == 0 and parsed is not None, issued.output
    token_id, secret = parsed
    listed = json.loads(run(env, "token", "list", "--user", "bot", "--json").output)
    engine = make_engine(env["MARQUEE_HUB_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            works = token_user(conn, token_id=token_id, secret=secret, now=datetime.now(UTC))
        revoked = run(env, "token", "revoke", token_id)
        with engine.connect() as conn:
            after = token_user(conn, token_id=token_id, secret=secret, now=datetime.now(UTC))
            actions = [row.action for row in list_actions(conn, action="token.")]
    finally:
        engine.dispose()

    assert no_user.exit_code == 1 and "no user 'nobody'" in no_user.output
    assert (listed["token_id"], listed["username"], listed["state"], listed["name"]) == (
        token_id, "bot", "active", "BI nightly")
    assert secret not in json.dumps(listed)
    assert works is not None and works.username == "bot"
    assert revoked.exit_code == 0 and after is None
    assert actions == ["token.revoke", "token.issue"]
    assert run(env, "token", "revoke", "0" * 16).exit_code == 1
