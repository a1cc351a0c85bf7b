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
from typing import TYPE_CHECKING

import click

from edge.errors import EdgeError
from edge.settings import READER_KINDS, EdgeSettings, load_settings

if TYPE_CHECKING:
    from edge.simulator.site import SiteSimulator
    from edge.simulator.stats import SimStats

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
    """Show how far the journal goes, how much of it the hub has not acknowledged, how many rows were
    quarantined, and, when the agent runs, every device's state and counters (frames, reads, errors by
    kind, reopens, last read). Opens the journal read-only: safe beside a running agent.

    Example: marquee-edge status --config /etc/marquee/edge.toml --json
    """
    from edge.localstatus import SOCKET_NAME, read_status
    from edge.store.layout import stats_read_only

    settings = _settings(config_file)
    try:
        stats = stats_read_only(settings.journal_path)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        live = read_status(settings.data_dir / SOCKET_NAME)
    except PermissionError as exc:
        raise click.ClickException(f"the agent runs but this user may not ask it ({exc.strerror}); run "
                                   "marquee-edge status as the agent's user or as root") from exc
    data = {
        "site_id": settings.site_id,
        "device_id": settings.device_id,
        "last_seq": stats.last_seq,
        "acked_seq": stats.acked_seq,
        "backlog": stats.backlog,
        "quarantined": stats.quarantined,
        "agent_running": live is not None,
        "devices": live.get("peripheral_health", {}) if live else {},
        "counters": live.get("counters", {}) if live else {},
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    for key in ("site_id", "device_id", "last_seq", "acked_seq", "backlog", "quarantined"):
        click.echo(f"{key}: {data[key]}")
    if live is None:
        click.echo("agent: not running (no answer on its status socket); device counters need a running agent")
        return
    click.echo("agent: running")
    for name, device in sorted(data["devices"].items()):
        errors = ", ".join(f"{kind} {count}" for kind, count in sorted(device.get("errors", {}).items())) or "none"
        click.echo(f"  {name:<20} {device.get('kind', ''):<10} {device.get('state', ''):<8} "
                   f"frames {device.get('frames', 0)}  reads {device.get('reads', 0)}  reopens "
                   f"{device.get('reopens', 0)}  last read {device.get('last_read_at') or 'never'}  errors: {errors}")


@main.command("read-cards")
@click.option("--kind", type=click.Choice(READER_KINDS), required=True, help="The reader's family.")
@click.option("--port", required=True, help="A serial port (prefer /dev/serial/by-id/...) or a pyserial URL.")
@click.option("--baud", type=click.IntRange(300, 4_000_000), default=None,
              help="Default: the family's usual speed (9600; 115200 for pn532).")
@click.option("--parity", type=click.Choice(["N", "E", "O", "M", "S"]), default="N", show_default=True)
@click.option("--bytesize", type=click.Choice(["7", "8"]), default="8", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The box's configuration: its pepper gives each card's token, its [cards] the card form.")
@click.option("--em4100", type=click.Choice(["tag32", "wiegand24"]), default=None,
              help="The chain's EM4100 form (default: the config's, else tag32).")
@click.option("--lrc", is_flag=True, help="magstripe: the reader sends an LRC after each track.")
@click.option("--reverse-uid", is_flag=True, help="nfc-line: the reader prints UID bytes reversed.")
@click.option("--wiegand-output", type=click.Choice(["bits", "hex", "decimal"]), default="bits", show_default=True)
@click.option("--wiegand-bits", type=click.Choice(["26", "34"]), default="26", show_default=True)
@click.option("--all", "show_repeats", is_flag=True, help="Show every frame, also a resting card's repeats.")
def read_cards(kind: str, port: str, baud: int | None, parity: str, bytesize: str, as_json: bool,
               config_file: Path | None, em4100: str | None, lrc: bool, reverse_uid: bool, wiegand_output: str,
               wiegand_bits: str, show_repeats: bool) -> None:
    """Open one reader's port and print each read or error as it happens, until Ctrl-C.

    With --json each line is an object with kind, card_id (the canonical id), token (with a pepper) and
    the family's fields; errors are {"error": KIND, ...}. Payment card numbers are always masked.
    Stop the agent first if it holds the port.

    Example: marquee-edge read-cards --kind wiegand --port /dev/serial/by-id/usb-FTDI_FT232R-if00-port0 --json
    """
    from pydantic import ValidationError

    from edge.devices.families import FAMILIES
    from edge.devices.serial_line import SerialLine
    from edge.readcards import CardPrinter
    from edge.settings import ReaderSettings
    from protocol.cards import CardScheme

    settings = _settings(config_file) if config_file is not None else None
    scheme = settings.cards if settings is not None else CardScheme()
    if em4100 is not None:
        scheme = CardScheme.model_validate({"em4100": em4100})
    try:
        reader = ReaderSettings.model_validate({
            "till": "t0", "kind": kind, "port": port, "baud": baud, "parity": parity, "bytesize": int(bytesize),
            "lrc": lrc, "reverse_uid": reverse_uid, "wiegand_output": wiegand_output,
            "wiegand_bits": int(wiegand_bits)})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise click.ClickException(f"invalid reader settings: {problems}") from exc
    pepper = settings.pepper.get_secret_value().encode() if settings is not None else None
    printer = CardPrinter(reader, scheme=scheme, pepper=pepper, as_json=as_json,
                          emit=lambda text: click.echo(text), show_repeats=show_repeats)
    family = FAMILIES[kind]
    line = SerialLine(name=f"read-cards-{kind}", url=port, baudrate=reader.baudrate, parity=parity,
                      bytesize=int(bytesize), parser_factory=lambda: family.make_parser(reader),
                      inter_byte_timeout=family.inter_byte_timeout_s,
                      on_item=lambda _line, item: printer.item(item),
                      on_state=lambda _line, state: printer.state(state))
    line.start()
    try:
        _wait_for_signal()
    finally:
        line.stop()
    click.echo(f"{printer.reads} read(s), {printer.errors} error(s)", err=True)


@main.command()
@CONFIG_OPTION
@click.option("--sales-per-minute", default=30.0, show_default=True, type=click.FloatRange(0.1, 100000))
@click.option("--seed", type=int, default=None, help="Repeatable sales for the same seed.")
@click.option("--noise", default=0.02, show_default=True, type=click.FloatRange(0, 1),
              help="Share of card presentations that first meet a fault (noise, partial or damaged frame).")
@click.option("--unplug-every", type=click.FloatRange(1, 86400), default=None,
              help="Pull a random reader's plug about this often (seconds), for a couple of seconds.")
@click.option("--redeem-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of sales with a member card where the member pays part with points.")
@click.option("--pass-rate", default=0.02, show_default=True, type=click.FloatRange(0, 1),
              help="Share of sales with a member card where the member also buys the chain's pass (PASS-CINE).")
@click.option("--stats-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep every till's counters in this JSON file (rewritten every few seconds and at the end).")
@click.option("--members", default=50, show_default=True, type=click.IntRange(1, 100_000),
              help="Member cards each till's customers hold (the same for the same seed).")
@click.option("--staff/--no-staff", default=False, show_default=True,
              help="A cashier per till (code <site>-<till>) signs in with a badge first (POS protocol v1.3).")
@click.option("--dishonest-till", default=None, help="With --staff: this till's cashier swipes their own card on "
              "customers' sales made without one.")
@click.option("--dishonest-rate", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of card-less sales on which the dishonest cashier swipes their own card.")
def simulate(config_file: Path, sales_per_minute: float, seed: int | None, noise: float,
             unplug_every: float | None, redeem_rate: float, pass_rate: float, stats_file: Path | None,
             members: int, staff: bool, dishonest_till: str | None, dishonest_rate: float) -> None:
    """Play a site's card readers (every configured family) and POS terminals: readers and serial tills on
    pseudo-terminals created at the configured port paths, TCP tills dialling the box's [pos_tcp] address.

    Every sale asks for the benefits of the chain's rules (POS protocol v1.2); at the end each till's summary
    says what the answers showed (money off, campaign points, tiers, passes, what the fraud rules did).

    Example: marquee-edge simulate --config demo/site-1.toml --sales-per-minute 60 --staff --dishonest-till t2
    """
    from edge.simulator.readers import ReaderOptions
    from edge.simulator.site import SimReader, SiteSimulator
    from edge.simulator.staff import site_staff

    settings = _settings(config_file)
    cashiers = site_staff(settings.site_id, seed, [till.till_id for till in settings.tills],
                          dishonest_till=dishonest_till, dishonest_rate=dishonest_rate) if staff else {}
    sims = []
    for index, till in enumerate(settings.tills):
        readers = []
        for _name, reader in settings.named_readers():
            if reader.till != till.till_id:
                continue
            _refuse_device_path(reader.port)
            readers.append(SimReader(reader.kind, Path(reader.port), ReaderOptions(
                lrc=reader.lrc, reverse_uid=reader.reverse_uid, wiegand_output=reader.wiegand_output,
                wiegand_bits=reader.wiegand_bits)))
        pos_tcp = None
        if till.pos_transport == "tcp":
            assert settings.pos_tcp is not None  # the settings refuse a TCP till without [pos_tcp]
            pos_tcp = (settings.pos_tcp.host, settings.pos_tcp.port)
        else:
            _refuse_device_path(str(till.pos_port))
        sims.append(SiteSimulator(
            pos_link=Path(till.pos_port) if till.pos_port else None, pos_tcp=pos_tcp, readers=readers,
            till_id=till.till_id, seed=None if seed is None else seed + index, sales_per_minute=sales_per_minute,
            noise=noise, unplug_every=unplug_every, redeem_rate=redeem_rate, pass_rate=pass_rate,
            staff=cashiers.get(till.till_id), members=members,
        ))
    for sim in sims:
        sim.start()
    done = threading.Event()
    writer = threading.Thread(target=_keep_stats, args=(stats_file, sims, done), daemon=True)
    if stats_file is not None:
        writer.start()
    try:
        _wait_for_signal()
    finally:
        for sim in sims:
            sim.stop()
        done.set()
        if stats_file is not None:
            writer.join(10)
        for sim in sims:
            for line in _till_summary(sim.till_id, sim.stats, sim.currency):
                click.echo(line)


def _keep_stats(path: Path, sims: list[SiteSimulator], done: threading.Event) -> None:
    # Rewritten whole and renamed into place: a reader never sees half a file.
    while True:
        stopping = done.wait(5)
        data = {"tills": {sim.till_id: sim.stats.as_dict() for sim in sims}}
        try:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(json.dumps(data))
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("cannot write the simulator's stats to %s: %s", path, exc.strerror)
        if stopping:
            return


def _till_summary(till_id: str, stats: SimStats, currency: str) -> list[str]:
    """What one simulated till did, and what the answers showed of the chain's rules."""
    def money(minor: int) -> str:
        return f"{minor / 100:,.2f} {currency}"

    mean = stats.answer_ms_total / stats.answered if stats.answered else 0.0
    off = stats.money_off
    campaigns = ", ".join(f"{campaign} {points:,}" for campaign, points in sorted(stats.campaign_points.items()))
    tiers = ", ".join(f"{tier} {members}" for tier, members in sorted(stats.tiers_seen.items()))
    return [
        f"till {till_id}: {stats.sales_sent} sales sent, {stats.answered} answered (mean {mean:.1f} ms, max "
        f"{stats.answer_ms_max:.1f} ms), {stats.unanswered} unanswered; {stats.points_seen:,} points earned, "
        f"{stats.points_redeemed:,} redeemed",
        f"  money off {money(sum(off.values()))}: {stats.pass_tickets} pass tickets ({money(off.get('pass', 0))}), "
        f"{stats.birthday_tickets} birthday tickets ({money(off.get('birthday', 0))}), {stats.member_discounts} "
        f"member discounts ({money(off.get('member', 0))}); {stats.passes_bought} passes bought",
        f"  bonus points: campaigns {campaigns or 'none'}; tiers {stats.tier_points:,}; day parts "
        f"{stats.daypart_points:,}; {stats.capped} sales capped; members by tier: {tiers or 'none seen'}",
        *([f"  staff: {stats.signins} sign-ins; {stats.own_card_sales} sales on the cashier's own card; fraud "
           f"rules: " + (", ".join(f"{action} {count}" for action, count in sorted(stats.fraud.items()))
                         or "nothing fired")] if stats.signins or stats.own_card_sales or stats.fraud else []),
    ]


def _refuse_device_path(port: str) -> None:
    # The simulator publishes a pty at each path: it must never replace a real device node or open a URL.
    if port.startswith("/dev/") or "://" in port:
        raise click.ClickException(f"simulate plays devices on pseudo-terminals at plain paths; {port} is a real "
                                   "device or a URL (use a config made for simulation)")
