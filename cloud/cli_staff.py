"""`marquee-hub staff` and `marquee-hub blocklist`: staff accounts and their badges, and the chain's blocklist.

Staff changes reach the boxes through the running hub's member directory (it publishes what changed within a
second); a blocklist change is published from here, signed, retained, and again by the hub when it reconnects.
A card number is never echoed nor logged; give it with --card, or leave --card out to be asked for it unechoed
(it then stays out of the shell's history).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import click
import sqlalchemy as sa

from cloud.access.audit import cli_operator, record_action
from cloud.cli_support import cli_settings, with_db
from cloud.errors import HubError
from cloud.fraud.report import masked_card as masked
from protocol.blocklist import Blocklist

FAMILIES = ["em4100", "wiegand", "nfc", "magstripe", "member", "read"]


def _number(card: str | None) -> str:
    if card is not None:
        return card
    return str(click.prompt("card number (not shown)", hide_input=True))


@click.group()
def staff() -> None:
    """Staff accounts: the cashier codes tills send, their role, sites and badges. Boxes get them in the member
    directory from the running hub.

    \b
    Example:
        marquee-hub staff add c-7 --role cashier --site riverside
        marquee-hub staff badge c-7 --family em4100
    """


@staff.command(name="add")
@click.argument("staff_id")
@click.option("--role", type=click.Choice(["cashier", "supervisor", "manager"]), required=True)
@click.option("--status", type=click.Choice(["active", "suspended", "left"]), default="active", show_default=True)
@click.option("--site", "sites", multiple=True, help="A site they work at (repeat it; none: every site).")
@click.option("--member", "member_id", help="Their own loyalty membership (member id), watched on their sales.")
def staff_add(staff_id: str, role: str, status: str, sites: tuple[str, ...], member_id: str | None) -> None:
    """Create a staff account, or set an existing one's role, status, sites and membership (the whole of it).

    \b
    Example:
        marquee-hub staff add c-7 --role cashier --site riverside --site harbour
        marquee-hub staff add c-7 --role cashier --status left
    """
    from cloud.staff.store import put_staff

    def put(conn: sa.Connection) -> bool:
        created = put_staff(conn, staff_id=staff_id, role=role, status=status, sites_of=sites, member_id=member_id,
                            at=datetime.now(UTC))
        record_action(conn, actor=cli_operator(), action="staff.create" if created else "staff.update",
                      target=staff_id, detail={"role": role, "status": status, "sites": sorted(sites)})
        return created

    created = with_db(put)
    click.echo(f"staff {staff_id} {'created' if created else 'updated'}; boxes get it from the running hub")


@staff.command(name="list")
@click.option("--site", help="Only those who work at this site.")
@click.option("--status", type=click.Choice(["active", "suspended", "left"]))
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def staff_list(site: str | None, status: str | None, as_json: bool) -> None:
    """List staff accounts with their badges (token and label, never the number).

    \b
    Example:
        marquee-hub staff list --site riverside --status active
    """
    from cloud.staff.store import list_staff

    team = with_db(lambda conn: list_staff(conn, site_id=site, status=status))
    if as_json:
        click.echo(json.dumps([{
            "staff_id": m.staff_id, "role": m.role, "status": m.status, "sites": m.sites, "member_id": m.member_id,
            "badges": [{"token": b.token, "label": b.label} for b in m.badges]} for m in team], indent=2))
        return
    for m in team:
        badges = ", ".join(b.label for b in m.badges) or "no badge"
        click.echo(f"{m.staff_id}\t{m.role}\t{m.status}\t{','.join(m.sites) or 'every site'}\t"
                   f"{m.member_id or '-'}\t{badges}")


@staff.command(name="badge")
@click.argument("staff_id")
@click.option("--family", type=click.Choice(FAMILIES), required=True,
              help="The kind of card (`read`: the id `marquee-edge read-cards` printed, e.g. em4100:0003887558).")
@click.option("--card", help="The card's number; left out, it is asked for without echo.")
def staff_badge(staff_id: str, family: str, card: str | None) -> None:
    """Give a staff member a badge, the card they sign in and approve with; only its token is kept.

    \b
    Example:
        marquee-hub staff badge c-7 --family em4100     # then type the number printed on the fob
    """
    from cloud.members.model import CardInput
    from cloud.members.store import card_context
    from cloud.staff.store import add_badge

    settings = cli_settings()
    try:
        cards = card_context(settings.pepper, settings.card_em4100)
        given = CardInput.model_validate({"kind": family, "number": _number(card)})
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # pydantic's text would repeat the number
        raise click.ClickException("the card number is empty, too long or holds control characters") from exc
    def add(conn: sa.Connection) -> str:
        token = add_badge(conn, cards, staff_id=staff_id, card=given, at=datetime.now(UTC))
        record_action(conn, actor=cli_operator(), action="staff.badge_add", target=staff_id, detail={"family": family})
        return token

    token = with_db(add)
    click.echo(f"staff {staff_id}: badge {token} added")


@staff.command(name="remove-badge")
@click.argument("staff_id")
@click.argument("token")
def staff_remove_badge(staff_id: str, token: str) -> None:
    """Take a badge back (by its token, as `staff list --json` shows it).

    \b
    Example:
        marquee-hub staff remove-badge c-7 9f2c...e1
    """
    from cloud.staff.store import remove_badge

    def remove(conn: sa.Connection) -> None:
        remove_badge(conn, staff_id=staff_id, token=token, at=datetime.now(UTC))
        record_action(conn, actor=cli_operator(), action="staff.badge_remove", target=staff_id,
                      detail={"badge": masked(token)})

    with_db(remove)
    click.echo(f"staff {staff_id}: badge removed")


@click.group()
def blocklist() -> None:
    """The chain's blocklist: cards and members the fraud rules decline at every box, offline too. Each change
    is published whole, signed with the rules key, retained on marquee/v1/chain/blocklist.

    \b
    Example:
        marquee-hub blocklist add --member m1a2b3c4d5e6f7a8b --reason "chargeback fraud"
        marquee-hub blocklist list
    """


@blocklist.command(name="add")
@click.option("--family", type=click.Choice(FAMILIES), help="A card by number: its kind (the number is asked for).")
@click.option("--card", help="With --family: the card's number (left out: asked for without echo).")
@click.option("--token", help="A card by its token.")
@click.option("--member", "member_id", help="A member by id (every card they hold).")
@click.option("--reason", required=True, help="Why (shown to HQ, not to the till).")
def blocklist_add(family: str | None, card: str | None, token: str | None, member_id: str | None,
                  reason: str) -> None:
    """List a card (--family and its number, or --token) or a member (--member), then publish the list.

    \b
    Example:
        marquee-hub blocklist add --family em4100 --reason "stolen fob"
        marquee-hub blocklist add --member m1a2b3c4d5e6f7a8b --reason "chargeback fraud"
    """
    from cloud.members.model import CardInput
    from cloud.members.store import card_context
    from cloud.staff import blocklist as lists

    if sum(given is not None for given in (family, token, member_id)) != 1 or (card is not None and family is None):
        raise click.UsageError("give one of --family (with the card's number), --token or --member")
    kind, value = ("member", member_id) if member_id is not None else ("card", token)
    settings = cli_settings()
    if family is not None:
        try:
            cards = card_context(settings.pepper, settings.card_em4100)
            value = lists.card_value(cards, CardInput.model_validate({"kind": family, "number": _number(card)}))
        except HubError as exc:
            raise click.ClickException(str(exc)) from exc
        except ValueError as exc:
            raise click.ClickException("the card number is empty, too long or holds control characters") from exc
    assert value is not None
    _change(lambda conn, at: lists.add(conn, kind=kind, value=value, reason=reason, by="cli", at=at),
            f"{kind} {value} listed", audit=("blocklist.add", kind, value))


@blocklist.command(name="remove")
@click.argument("kind", type=click.Choice(["card", "member"]))
@click.argument("value")
def blocklist_remove(kind: str, value: str) -> None:
    """Take a card (by token) or a member (by id) off the blocklist, then publish the list.

    \b
    Example:
        marquee-hub blocklist remove member m1a2b3c4d5e6f7a8b
    """
    from cloud.staff import blocklist as lists

    _change(lambda conn, at: lists.remove(conn, kind=kind, value=value, at=at), f"{kind} {value} removed",
            audit=("blocklist.remove", kind, value))


@blocklist.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def blocklist_list(as_json: bool) -> None:
    """List the blocklist: kind, card token or member id, reason, when and by whom.

    \b
    Example:
        marquee-hub blocklist list --json
    """
    from cloud.staff import blocklist as lists

    current, listed = with_db(lambda conn: (lists.current(conn), lists.entries(conn)))
    version = current.version if current is not None else 0
    if as_json:
        click.echo(json.dumps({"version": version, "entries": [
            {"kind": e.kind, "value": e.value, "reason": e.reason, "added_at": e.added_at.isoformat(),
             "added_by": e.added_by} for e in listed]}, indent=2))
        return
    click.echo(f"blocklist version {version}: {len(listed)} entr{'y' if len(listed) == 1 else 'ies'}")
    for e in listed:
        click.echo(f"{e.kind}\t{e.value}\t{e.added_at.isoformat()}\t{e.added_by or '-'}\t{e.reason or ''}")


def _change(change: Callable[[sa.Connection, datetime], int], done: str, *, audit: tuple[str, str, str]) -> None:
    """Make the change, record it in the HQ audit log and read the list it leaves, in one transaction; publish it
    once committed. `audit`: the action, and the kind and value listed (a card shown masked)."""
    from cloud.bundles import load_signing_key
    from cloud.staff import blocklist as lists

    settings = cli_settings()
    try:
        key = load_signing_key(settings.rules_key_file)  # nothing changes that could not be published
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    action, kind, value = audit

    def work(conn: sa.Connection) -> tuple[int, Blocklist | None]:
        version = change(conn, datetime.now(UTC))
        record_action(conn, actor=cli_operator(), action=action,
                      target=f"{kind}:{masked(value) if kind == 'card' else value}")
        return version, lists.signed(conn, key)

    version, listed = with_db(work)
    click.echo(f"blocklist version {version}: {done}")
    if listed is None:
        return
    try:
        lists.push(settings, listed)
    except HubError as exc:
        raise click.ClickException(f"blocklist version {version} is kept, but not yet published: {exc}; the hub "
                                   "publishes it when it reconnects to the broker") from exc
    click.echo(f"blocklist version {listed.version} published")
