"""`marquee-hub rules`: sign and publish the rule bundle every box runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy as sa

from cloud.cli_support import cli_settings, with_db
from cloud.errors import HubError
from cloud.settings import HubSettings
from protocol.rules import RuleBundle
from protocol.signing import public_key_text


@click.group()
def rules() -> None:
    """Sign and publish the rule bundle every box runs (earning, redemption).

    The signing key lives in a file outside the database (MARQUEE_HUB_RULES_KEY_FILE); each box holds its
    public half as `hub_public_key` and runs only bundles it signed.

    \b
    Example:
        marquee-hub rules key
        marquee-hub rules publish draft.json
    """


@rules.command(name="key")
def rules_key() -> None:
    """Create the signing key if there is none, and print its public half for the boxes' configuration.

    \b
    Example:
        marquee-hub rules key    # then in each box's edge.toml: hub_public_key = "ed25519:..."
    """
    from cloud.bundles import create_signing_key, load_signing_key

    settings = cli_settings()
    try:
        key = (load_signing_key(settings.rules_key_file) if settings.rules_key_file.exists()
               else create_signing_key(settings.rules_key_file))
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(public_key_text(key))


@rules.command(name="publish")
@click.argument("draft", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_publish(draft: Path) -> None:
    """Validate a draft bundle (JSON: currency, earning, redemption), sign it as the next version, keep it,
    and publish it retained to every site's boxes.

    \b
    Example:
        marquee-hub rules publish draft.json
    """
    from cloud.access.audit import cli_operator, record_action
    from cloud.bundles import load_signing_key, publish_draft, site_ids

    settings = cli_settings()
    try:
        key = load_signing_key(settings.rules_key_file)
        document = json.loads(draft.read_bytes())
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.ClickException(f"{draft.name} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise click.ClickException(f"{draft.name} must hold one JSON object")
    def publish(conn: sa.Connection) -> tuple[RuleBundle, list[str]]:
        bundle = publish_draft(conn, document, key, at=datetime.now(UTC))
        record_action(conn, actor=cli_operator(), action="rules.publish", target=f"version {bundle.version}")
        return bundle, site_ids(conn)

    bundle, targets = with_db(publish)
    _push(settings, bundle, targets)


@rules.command(name="push")
def rules_push() -> None:
    """Publish the latest bundle again to every site (after registering a new site's box).

    \b
    Example:
        marquee-hub rules push
    """
    from cloud.bundles import latest_bundle, site_ids

    settings = cli_settings()
    bundle, targets = with_db(lambda conn: (latest_bundle(conn), site_ids(conn)))
    if bundle is None:
        raise click.ClickException("no bundle published yet; publish one with `marquee-hub rules publish`")
    _push(settings, bundle, targets)


def _push(settings: HubSettings, bundle: RuleBundle, targets: list[str]) -> None:
    from cloud.bundles import push

    try:
        push(settings, bundle, targets)
    except HubError as exc:
        raise click.ClickException(f"bundle version {bundle.version} is kept, but not yet published: {exc}; "
                                   "run `marquee-hub rules push` once the broker answers") from exc
    click.echo(f"bundle version {bundle.version} published to {len(targets)} site(s)")
