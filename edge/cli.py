"""`marquee-edge`: run the site agent, prepare its keys, inspect its journal, simulate a site's devices."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from edge.errors import EdgeError
from edge.settings import EdgeSettings, load_settings

log = logging.getLogger("edge.cli")
CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The box's TOML configuration (see deploy/edge.example.toml).",
)


def _settings(config_file: Path) -> EdgeSettings:
    try:
        return load_settings(config_file)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(1.0):
        pass


@click.group()
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(log_level: str) -> None:
    """Marquee site agent.

    Example: marquee-edge run --config /etc/marquee/edge.toml
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@main.command()
@CONFIG_OPTION
def init(config_file: Path) -> None:
    """Create the data folder, the device master key and the identity key (once, at provisioning).

    Prints the identity's public key: register it at the hub with `marquee-hub devices add`.

    Example: marquee-edge init --config /etc/marquee/edge.toml
    """
    from edge.store.keys import create_identity_key, create_master_key
    from edge.store.layout import secure_folder
    from protocol.signing import public_key_text

    settings = _settings(config_file)
    os.umask(0o077)
    try:
        secure_folder(settings.data_dir)
        create_master_key(settings.key_path)
        key = create_identity_key(settings.identity_path)
    except (EdgeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"master key written to {settings.key_path}")
    click.echo(f"identity key written to {settings.identity_path}")
    click.echo("register this box at the hub:")
    click.echo(f"  marquee-hub devices add --site {settings.site_id} --device {settings.device_id} "
               f"--public-key {public_key_text(key)}")


@main.command()
@CONFIG_OPTION
def identity(config_file: Path) -> None:
    """Print the box's public identity key (ed25519:...), as `marquee-hub devices add` takes it.

    Example: marquee-hub devices add --site riverside --device riverside-box1 \\
                 --public-key "$(marquee-edge identity --config /etc/marquee/edge.toml)"
    """
    from edge.store.keys import load_identity_key
    from protocol.signing import public_key_text

    settings = _settings(config_file)
    try:
        key = load_identity_key(settings.identity_path)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(public_key_text(key))


@main.command()
@CONFIG_OPTION
def run(config_file: Path) -> None:
    """Run the agent: read the tills' devices, answer sales, sync to the hub, until SIGTERM or Ctrl-C.

    Example: marquee-edge run --config /etc/marquee/edge.toml
    """
    from edge.agent import Agent
    from edge.store.bootstrap import open_identity, open_journal

    settings = _settings(config_file)
    os.umask(0o077)  # whatever the agent creates is its own; the journal also sets 0600 itself
    try:
        journal = open_journal(settings, create_key=True)
        identity_key = open_identity(settings, create=True)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc
    agent = Agent(settings, journal=journal, pepper=settings.pepper.get_secret_value().encode(),
                  identity=identity_key)
    agent.start()
    try:
        _wait_for_signal()
    finally:
        agent.stop()


@main.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def status(config_file: Path, as_json: bool) -> None:
    """Show how far the journal goes, how much of it the hub has not acknowledged, and how many rows
    were quarantined. Opens the journal read-only: safe beside a running agent.

    Example: marquee-edge status --config /etc/marquee/edge.toml --json
    """
    from edge.store.layout import stats_read_only

    settings = _settings(config_file)
    try:
        stats = stats_read_only(settings.journal_path)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc
    data = {
        "site_id": settings.site_id,
        "device_id": settings.device_id,
        "last_seq": stats.last_seq,
        "acked_seq": stats.acked_seq,
        "backlog": stats.backlog,
        "quarantined": stats.quarantined,
    }
    if as_json:
        click.echo(json.dumps(data))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


@main.command()
@CONFIG_OPTION
@click.option("--sales-per-minute", default=30.0, show_default=True, type=click.FloatRange(0.1, 100000))
@click.option("--seed", type=int, default=None, help="Repeatable sales for the same seed.")
@click.option("--noise", default=0.02, show_default=True, type=click.FloatRange(0, 1),
              help="Share of reads with line noise or a damaged frame.")
def simulate(config_file: Path, sales_per_minute: float, seed: int | None, noise: float) -> None:
    """Play a site's card readers and POS terminals on pseudo-terminals at the configured port paths.

    Example: marquee-edge simulate --config demo/site-1.toml --sales-per-minute 60
    """
    from edge.simulate import SiteSimulator

    settings = _settings(config_file)
    sims = []
    for index, till in enumerate(settings.tills):
        if till.card_port is None:
            raise click.ClickException(f"till {till.till_id} has no card_port to simulate")
        sims.append(
            SiteSimulator(
                card_link=Path(till.card_port),
                pos_link=Path(till.pos_port),
                till_id=till.till_id,
                seed=None if seed is None else seed + index,
                sales_per_minute=sales_per_minute,
                noise=noise,
            )
        )
    for sim in sims:
        sim.start()
    try:
        _wait_for_signal()
    finally:
        for sim in sims:
            sim.stop()
