"""`marquee-hub`: run the hub, migrate its database, manage its devices (users and tokens: cli_access.py; rules:
cli_rules.py)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import click
import sqlalchemy as sa

from cloud.access.audit import cli_operator, record_action
from cloud.cli_access import token, user
from cloud.cli_analytics import analytics
from cloud.cli_members import members
from cloud.cli_reports import export, report
from cloud.cli_rules import rules
from cloud.cli_staff import blocklist, staff
from cloud.cli_support import cli_settings, migrate_db, with_db
from cloud.db.devices import list_conflicts, list_devices, register_device, revoke_device
from cloud.errors import HubError
from cloud.ingest.conflicts import Keep, Resolution, resolve_conflicts
from protocol.errors import ProtocolError
from protocol.ids import is_valid_id
from protocol.rules import RuleBundle
from protocol.signing import parse_public_key, public_key_text


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group()
@click.version_option(package_name="marquee", prog_name="marquee-hub")
def main() -> None:
    """Marquee HQ hub: ingests every site box's events over MQTT and serves the API and dashboard.

    Settings come from MARQUEE_HUB_* environment variables (database_url, mqtt_host, ...).

    \b
    Example:
        MARQUEE_HUB_DATABASE_URL=sqlite:///hub.db marquee-hub migrate
        marquee-hub serve --port 8000
    """


@main.command()
@click.option("--host", help="Address to listen on (default: MARQUEE_HUB_HTTP_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default: 8000).")
@click.option("--no-ingest", is_flag=True, help="Serve the API only; do not subscribe to the broker.")
@click.option("--access-log", is_flag=True, help="Log every HTTP request (off by default).")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def serve(host: str | None, port: int | None, no_ingest: bool, access_log: bool, log_level: str) -> None:
    """Run the hub: migrate the database, ingest from MQTT, serve HTTP.

    \b
    Example:
        MARQUEE_HUB_MQTT_HOST=broker.example marquee-hub serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from cloud.api.app import create_app

    settings = cli_settings(http_host=host, http_port=port)
    _configure_logging(log_level)
    # Migrate here first so that a bad or unreachable database ends in one clear line, not a traceback.
    migrate_db(settings)
    try:
        app = create_app(settings, start_ingest=not no_ingest)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    # log_config=None: uvicorn's loggers propagate to the root logger configured above.
    # proxy_headers=False: the client address the login limits count is the peer's, never a header a
    # client can write (X-Forwarded-For); a reverse proxy in front limits by address itself.
    # No access log unless asked: under a flood of refused logins it would be a flood of lines.
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, log_level=log_level,
                proxy_headers=False, access_log=access_log,
                # The dashboard's live streams end on their own within seconds; do not wait longer to stop.
                timeout_graceful_shutdown=3)


@main.command(name="migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema to the newest version (safe to repeat).

    \b
    Example:
        MARQUEE_HUB_DATABASE_URL=postgresql+psycopg://hub@db/marquee marquee-hub migrate
    """
    settings = cli_settings()
    migrate_db(settings)
    click.echo("database schema is up to date")


@main.group()
def devices() -> None:
    """Register site boxes, revoke them, and resolve chain conflicts.

    Nothing a box sends is accepted until its public key is registered here. The box prints its key
    with `marquee-edge identity`.

    \b
    Example:
        marquee-hub devices add --site riverside --device riverside-box1 --public-key ed25519:Gk...
        marquee-hub devices list
    """


def _id_option(value: str) -> str:
    if not is_valid_id(value):
        raise click.BadParameter("lower-case letters, digits, '-' and '_', starting with a letter or digit")
    return value


@devices.command(name="add")
@click.option("--site", "site_id", required=True, callback=lambda ctx, param, value: _id_option(value),
              help="The site the box serves (created if new).")
@click.option("--device", "device_id", required=True, callback=lambda ctx, param, value: _id_option(value),
              help="The box's device id, as in its configuration.")
@click.option("--public-key", required=True, help="The box's key as `marquee-edge identity` prints it (ed25519:...).")
@click.option("--replace-key", is_flag=True, help="Replace the key of a registered (or revoked) device.")
def devices_add(site_id: str, device_id: str, public_key: str, replace_key: bool) -> None:
    """Register a box's public key for a site, so that its events and statuses are accepted.

    \b
    Example:
        marquee-hub devices add --site riverside --device riverside-box1 \\
            --public-key "$(ssh riverside-box marquee-edge identity --config /etc/marquee/edge.toml)"
    """
    try:
        key = public_key_text(parse_public_key(public_key))
    except ProtocolError as exc:
        raise click.ClickException(f"--public-key: {exc}") from exc
    from cloud.bundles import latest_bundle, push

    def register(conn: sa.Connection) -> tuple[str, RuleBundle | None]:
        outcome = register_device(conn, site_id=site_id, device_id=device_id, public_key=key, at=datetime.now(UTC),
                                  replace_key=replace_key)
        record_action(conn, actor=cli_operator(), action="device.register", target=device_id, site_id=site_id,
                      detail={"outcome": str(outcome), "replace_key": replace_key})
        return outcome, latest_bundle(conn)

    outcome, bundle = with_db(register)
    click.echo(f"device {device_id} of site {site_id}: {outcome}")
    if bundle is not None:
        # A site new to the rules topic would otherwise wait for the next publish to get any bundle.
        try:
            push(cli_settings(), bundle, [site_id], timeout=5)
        except HubError as exc:
            click.echo(f"the rule bundle (version {bundle.version}) is not yet on site {site_id}'s topic: {exc}; "
                       "run `marquee-hub rules push` once the broker answers", err=True)
        else:
            click.echo(f"rule bundle version {bundle.version} published to site {site_id}")


@devices.command(name="list")
@click.option("--site", "site_id", help="Only the devices of this site.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def devices_list(site_id: str | None, as_json: bool) -> None:
    """Show every registered device: site, key, chain head, lost events, open conflict.

    \b
    Example:
        marquee-hub devices list --site riverside
    """
    records = with_db(lambda conn: list_devices(conn, site_id=site_id))
    for record in records:
        state = "revoked" if record.revoked_at else "conflict" if record.conflict else "ok"
        if record.public_key is None:
            state = "no key"
        if as_json:
            click.echo(json.dumps({
                "site_id": record.site_id, "device_id": record.device_id, "public_key": record.public_key,
                "state": state, "last_seq": record.last_seq, "lost_events": record.lost_events,
                "conflict": record.conflict,
            }))
        else:
            click.echo(f"{record.site_id:<20} {record.device_id:<24} {state:<8} seq {record.last_seq:<8} "
                       f"lost {record.lost_events:<4} {record.public_key or '-'}")


@devices.command(name="revoke")
@click.argument("device_id")
def devices_revoke(device_id: str) -> None:
    """Refuse everything a device sends from now on (a stolen or cloned box). What it sent before stays.

    \b
    Example:
        marquee-hub devices revoke riverside-box1
    """
    def revoke(conn: sa.Connection) -> bool:
        revoked = revoke_device(conn, device_id=device_id, at=datetime.now(UTC))
        if revoked:
            record_action(conn, actor=cli_operator(), action="device.revoke", target=device_id)
        return revoked

    if not with_db(revoke):
        raise click.ClickException(f"device {device_id} is not registered, or is revoked already")
    click.echo(f"device {device_id} revoked; register a new key with devices add --replace-key")


@devices.command(name="conflicts")
@click.option("--device", "device_id", help="Only this device's conflicts.")
@click.option("--all", "show_all", is_flag=True, help="Resolved conflicts too.")
def devices_conflicts(device_id: str | None, show_all: bool) -> None:
    """List chain conflicts: two validly signed events under one seq (a cloned box, a stolen key, or a
    journal restored from an old backup).

    \b
    Example:
        marquee-hub devices conflicts --device riverside-box1
    """
    rows = with_db(lambda conn: list_conflicts(conn, device_id=device_id, open_only=not show_all))
    if not rows:
        click.echo("no chain conflict")
    for row in rows:
        state = f"resolved ({row.resolution})" if row.resolved_at else "open"
        click.echo(f"{row.device_id} seq {row.seq}: held {row.held_hash or '-'} received {row.received_hash} "
                   f"at {row.detected_at:%Y-%m-%d %H:%M:%S} UTC, {state}")


@devices.command(name="resolve")
@click.argument("device_id")
@click.option("--keep", type=click.Choice(["hub", "box"]), required=True,
              help="hub: the events the hub holds stand. box: the hub archives its events from the conflicting "
                   "seq on and takes the box's.")
@click.option("--note", help="Why, for the record.")
def devices_resolve(device_id: str, keep: Keep, note: str | None) -> None:
    """Close a device's open chain conflicts, keeping the hub's chain or the box's.

    With --keep box the archived events leave the box-office figures and the box's own arrive with its
    next resend (within 5 minutes).

    \b
    Example:
        marquee-hub devices resolve riverside-box1 --keep hub --note "clone found in the back office"
    """
    def resolve(conn: sa.Connection) -> Resolution:
        result = resolve_conflicts(conn, device_id=device_id, keep=keep, at=datetime.now(UTC), note=note)
        record_action(conn, actor=cli_operator(), action="device.resolve", target=device_id,
                      detail={"keep": keep, "conflicts": result.conflicts, "archived": result.archived})
        return result

    result = with_db(resolve)
    click.echo(f"device {device_id}: {result.conflicts} conflict(s) resolved keeping the {keep}'s chain; "
               f"{result.archived} event(s) archived; chain head at seq {result.head_seq}")


main.add_command(user)
main.add_command(token)
main.add_command(rules)
main.add_command(members)
main.add_command(staff)
main.add_command(blocklist)
main.add_command(analytics)
main.add_command(report)
main.add_command(export)
