"""The chain's blocklist at the hub: cards (by token) and members (by id) the fraud rules decline everywhere.

Each change takes the next version (`blocklist_state`, row-locked in the changing transaction, so versions
commit in order whatever the number of hub processes) and, once committed, the whole list is signed with the
hub's rules key and published retained (QoS 1) on `marquee/v1/chain/blocklist`. The list is rebuilt from the
tables, never stored signed: a version's content and time are fixed, and Ed25519 signs them the same each time.

When the broker cannot take it, the change stays saved; the ingest worker publishes the latest again each time
it connects to the broker (hub start, broker back), and the next change publishes the whole list anyway.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.bundles import load_signing_key
from cloud.db.fraud_tables import blocklist, blocklist_state
from cloud.db.schema import members
from cloud.errors import HubError, MemberError, StaffError
from cloud.members.model import CardInput
from cloud.members.store import CardContext
from cloud.retained import publish_retained
from cloud.settings import HubSettings
from protocol.blocklist import MAX_BLOCKLIST, Blocklist
from protocol.codec import encode
from protocol.directory import MEMBER_ID_PATTERN, TOKEN_PATTERN
from protocol.signing import sign_blocklist
from protocol.topics import BLOCKLIST

log = logging.getLogger(__name__)
KINDS = ("card", "member")
_TOKEN = re.compile(TOKEN_PATTERN)
_MEMBER = re.compile(MEMBER_ID_PATTERN)


@dataclass(frozen=True)
class Listed:
    """One blocklist entry as HQ sees it."""

    kind: str
    value: str
    reason: str | None
    added_at: datetime
    added_by: str | None


def card_value(cards: CardContext, card: CardInput) -> str:
    """The token a card number is listed by; StaffError(invalid) naming what is wrong, never the number."""
    try:
        return cards.token(card)[0]
    except MemberError as exc:
        raise StaffError("invalid", str(exc)) from exc


def _checked(kind: str, value: str) -> None:
    if kind not in KINDS:
        raise StaffError("invalid", "kind: card or member")
    if kind == "card" and not _TOKEN.match(value):
        raise StaffError("invalid", "token: 32 to 64 lower-case hex digits (a card's token, not its number)")
    if kind == "member" and not _MEMBER.match(value):
        raise StaffError("invalid", "member_id: not a member id")


def _next_version(conn: sa.Connection, at: datetime) -> int:
    """Take the next version, row-locking the counter until the caller commits."""
    version = conn.execute(
        sa.update(blocklist_state).where(blocklist_state.c.id == 1)
        .values(version=blocklist_state.c.version + 1, published_at=at).returning(blocklist_state.c.version)
    ).scalar()
    if version is None:  # a database made before the counter row was seeded
        conn.execute(blocklist_state.insert().values(id=1, version=1, published_at=at))
        return 1
    return int(version)


def add(conn: sa.Connection, *, kind: str, value: str, reason: str | None, by: str | None, at: datetime) -> int:
    """List a card token or a member id; returns the blocklist's new version. StaffError: invalid (the form, an
    unknown member), conflict (listed already, or the list is full)."""
    _checked(kind, value)
    if kind == "member" and conn.execute(
            sa.select(members.c.member_id).where(members.c.member_id == value)).first() is None:
        raise StaffError("invalid", "member_id: no such member")
    if conn.execute(sa.select(blocklist.c.kind).where((blocklist.c.kind == kind) & (blocklist.c.value == value))
                    ).first() is not None:
        raise StaffError("conflict", f"this {kind} is on the blocklist already")
    count = conn.execute(sa.select(sa.func.count()).select_from(blocklist).where(blocklist.c.kind == kind)
                         ).scalar_one()
    if count >= MAX_BLOCKLIST:
        raise StaffError("conflict", f"the blocklist holds {MAX_BLOCKLIST} {kind}s, what boxes take at most; "
                                     "remove some first")
    stamp = at.replace(microsecond=0)
    version = _next_version(conn, stamp)
    conn.execute(blocklist.insert().values(kind=kind, value=value, reason=reason, added_at=stamp, added_by=by))
    return version


def remove(conn: sa.Connection, *, kind: str, value: str, at: datetime) -> int:
    """Take a card token or member id off the blocklist; returns the new version. StaffError(not_found)."""
    _checked(kind, value)
    if conn.execute(sa.select(blocklist.c.kind).where((blocklist.c.kind == kind) & (blocklist.c.value == value))
                    ).first() is None:
        raise StaffError("not_found", f"this {kind} is not on the blocklist")
    version = _next_version(conn, at.replace(microsecond=0))
    conn.execute(blocklist.delete().where((blocklist.c.kind == kind) & (blocklist.c.value == value)))
    return version


def entries(conn: sa.Connection) -> list[Listed]:
    """Every entry, cards then members, by value."""
    rows = conn.execute(sa.select(blocklist).order_by(blocklist.c.kind, blocklist.c.value))
    return [Listed(row.kind, row.value, row.reason, row.added_at, row.added_by) for row in rows]


def current(conn: sa.Connection) -> Blocklist | None:
    """The blocklist as boxes get it, unsigned; None before its first change. Read the tables in one
    transaction (the caller's) so the version and the entries agree."""
    state = conn.execute(sa.select(blocklist_state.c.version, blocklist_state.c.published_at)
                         .where(blocklist_state.c.id == 1)).first()
    if state is None or not state.version:
        return None
    cards: list[str] = []
    listed_members: list[str] = []
    for row in conn.execute(sa.select(blocklist.c.kind, blocklist.c.value).order_by(blocklist.c.value)):
        (cards if row.kind == "card" else listed_members).append(row.value)
    return Blocklist(version=int(state.version), issued_at=state.published_at, cards=cards, members=listed_members)


def signed(conn: sa.Connection, key: Ed25519PrivateKey) -> Blocklist | None:
    """`current`, signed with the hub's rules key."""
    unsigned = current(conn)
    return None if unsigned is None else sign_blocklist(unsigned, key)


def push(settings: HubSettings, listed: Blocklist, *, timeout: float = 10.0) -> None:
    """Publish `listed` retained (QoS 1) on the blocklist topic; HubError when the broker does not take it."""
    publish_retained(settings, [(BLOCKLIST, encode(listed))], what="blocklist", timeout=timeout)


class BlocklistRepublisher:
    """Publishes the latest blocklist again at each connection of the ingest worker (hub start, broker back):
    a change the broker could not take reaches it then. A missing key is logged once per reason."""

    def __init__(self, engine: sa.Engine, key_file: Path) -> None:
        self._engine = engine
        self._key_file = key_file
        self._problem: str | None = None
        self.published: int | None = None
        """The version last handed to the broker by this process."""

    def on_connected(self, publish: Callable[[str, bytes], object]) -> None:
        """Sign and hand the latest to `publish(topic, payload)` (retained, QoS 1); never raises."""
        try:
            key = load_signing_key(self._key_file)
            with self._engine.connect() as conn:
                listed = signed(conn, key)
            if listed is None:
                return
            publish(BLOCKLIST, encode(listed))
            self.published = listed.version
            self._problem = None
        except (HubError, sa.exc.SQLAlchemyError) as exc:
            reason = str(exc).splitlines()[0][:200]
            if reason != self._problem:
                log.warning("blocklist not published again: %s", reason)
                self._problem = reason
        except Exception:  # called from paho's network thread at each connection: never let anything out
            log.exception("blocklist not published again")

