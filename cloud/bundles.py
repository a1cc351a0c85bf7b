"""Rule bundles at the hub: the signing key (a file, never the database), a draft published as the next
version, and the latest pushed retained to every site's rules topic, where boxes take it.

The private key signs; boxes hold its public half (`hub_public_key`) and run nothing it did not sign.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from cloud.db.schema import box_office, rule_bundles, sites
from cloud.errors import ConfigError, HubError
from cloud.retained import publish_retained
from cloud.settings import HubSettings
from protocol.rules import MAX_BUNDLE_BYTES, RuleBundle
from protocol.signing import sign_bundle
from protocol.topics import site_topic

HUB_SET_FIELDS = ("version", "published_at", "signature", "schema")
SIGNED_EXTRA = 200
"""Bytes the hub's own fields add to a draft (version, time, signature): an estimate of the signed size."""


def create_signing_key(path: Path) -> Ed25519PrivateKey:
    """A new Ed25519 key at `path` (PKCS#8 PEM, 0600); ConfigError rather than overwrite one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already holds a signing key; boxes trust it: keep it (or move it away "
                          "first, and give every box the new public key)") from exc
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The hub's signing key; ConfigError saying how to make one when it is missing or unusable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"no signing key at {path}; create one with `marquee-hub rules key` (set "
                          "MARQUEE_HUB_RULES_KEY_FILE to keep it elsewhere)") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key")
    return key


def latest_bundle(conn: sa.Connection) -> RuleBundle | None:
    """The newest published bundle, signed."""
    row = conn.execute(sa.select(rule_bundles.c.body).order_by(rule_bundles.c.version.desc()).limit(1)).first()
    return None if row is None else RuleBundle.model_validate(row.body)


def _next_version(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(rule_bundles.c.version))).scalar_one_or_none() or 0) + 1


def _as_bundle(draft: dict[str, Any], version: int, at: datetime) -> RuleBundle | list[tuple[str, str]]:
    """The draft as the bundle it would be, or its problems as (field path, message), never values."""
    set_by_hub = sorted(set(draft) & set(HUB_SET_FIELDS))
    if set_by_hub:
        return [(name, f"the hub sets {name} itself; leave it out of the draft") for name in set_by_hub]
    problems = _size_problems(draft)
    try:
        bundle = RuleBundle.model_validate({**draft, "version": version, "published_at": at})
    except ValidationError as exc:
        return problems + [(".".join(str(part) for part in err["loc"]) or "bundle", err["msg"])
                           for err in exc.errors(include_url=False)]
    return problems or bundle


def _size_problems(draft: dict[str, Any]) -> list[tuple[str, str]]:
    """A draft boxes would refuse for its size, signed (an estimate on the safe side: spaces included)."""
    size = len(json.dumps(draft, default=str)) + SIGNED_EXTRA  # default: a draft built in Python may hold dates
    if size <= MAX_BUNDLE_BYTES:
        return []
    return [("bundle", f"the bundle would be about {size} bytes signed and boxes take at most {MAX_BUNDLE_BYTES}; "
                       "shorten the film catalogue or the campaigns")]


def draft_problems(conn: sa.Connection, draft: dict[str, Any]) -> list[tuple[str, str]]:
    """What keeps `draft` from being published as the next version (empty: nothing): the bundle's own checks,
    then what its campaigns name that the hub has never seen (films, halls, sites)."""
    checked = _as_bundle(draft, _next_version(conn), datetime.now(UTC))
    problems = checked if isinstance(checked, list) else []
    if any(loc in HUB_SET_FIELDS for loc, _ in problems):
        return problems  # the hub's own fields first; fix those, then the rest shows
    flagged = {loc for loc, _ in problems}
    return problems + [problem for problem in _unknown_references(conn, draft) if problem[0] not in flagged]


def _named(draft: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """(field path, value) of every `match.<name>` entry of the draft's campaigns (read as sent: the draft
    may be invalid elsewhere)."""
    campaigns = draft.get("campaigns")
    named = []
    for index, campaign in enumerate(campaigns if isinstance(campaigns, list) else ()):
        match = campaign.get("match") if isinstance(campaign, dict) else None
        values = match.get(name) if isinstance(match, dict) else None
        for position, value in enumerate(values if isinstance(values, list) else ()):
            if isinstance(value, str):
                named.append((f"campaigns.{index}.match.{name}.{position}", value))
    return named


def _unknown_references(conn: sa.Connection, draft: dict[str, Any]) -> list[tuple[str, str]]:
    # Film titles, hall ids and site ids are not personal data: the messages name them (shortened).
    problems = []
    films = draft.get("films")
    catalogue = {film["title"].casefold() for film in (films if isinstance(films, list) else ())
                 if isinstance(film, dict) and isinstance(film.get("title"), str)}
    named_films = [(loc, title) for loc, title in _named(draft, "films") if title.casefold() not in catalogue]
    if named_films:
        # The box-office rollup holds every film sold (a row per site, day, film and hall): far fewer rows
        # than the sales, and titles compare casefolded, which SQL cannot do the same on both backends.
        sold = {str(film).casefold() for film in conn.execute(sa.select(box_office.c.film).distinct()).scalars()}
        problems += [(loc, f"film {title[:120]!r} is neither in the draft's film catalogue nor in any sale the "
                           "hub holds; check the title as tills send it, or add the film to `films`")
                     for loc, title in named_films if title.casefold() not in sold]
    named_halls = _named(draft, "halls")
    if named_halls:
        # Campaigns match halls casefolded (`protocol.campaigns`), which SQL cannot do the same on both backends.
        seen = {str(hall).casefold() for hall in conn.execute(sa.select(box_office.c.hall).distinct()).scalars()
                if hall is not None}
        problems += [(loc, f"hall {hall[:64]!r} is in no sale the hub holds; campaigns match halls as tills send "
                           "them (in any case): check the id")
                     for loc, hall in named_halls if hall.casefold() not in seen]
    named_sites = _named(draft, "sites")
    if named_sites:
        registered = set(site_ids(conn))
        problems += [(loc, f"site {site[:64]!r} is not registered; check the id, or register the site's box "
                           "first (`marquee-hub devices add`)")
                     for loc, site in named_sites if site not in registered]
    return problems


def publish_draft(conn: sa.Connection, draft: dict[str, Any], key: Ed25519PrivateKey, *, at: datetime,
                  by: str | None = None) -> RuleBundle:
    """Validate `draft` (a bundle without version, time or signature), sign it as the next version, store it.

    HubError naming each problem by field, never echoing values.
    """
    bundle = _as_bundle(draft, _next_version(conn), at)
    if isinstance(bundle, list):
        raise HubError("the draft is not a valid bundle: " + "; ".join(f"{loc}: {msg}" for loc, msg in bundle))
    signed = sign_bundle(bundle, key)
    # Two publishers at once pick the same version: the primary key refuses the second one.
    conn.execute(sa.insert(rule_bundles).values(
        version=signed.version, published_at=at, published_by=by,
        body=signed.model_dump(mode="json", by_alias=True)))
    return signed


def site_ids(conn: sa.Connection) -> list[str]:
    """Every site the hub knows (a site exists once a box is registered for it)."""
    return [row.site_id for row in conn.execute(sa.select(sites.c.site_id).order_by(sites.c.site_id))]


def push(settings: HubSettings, bundle: RuleBundle, sites_to: list[str], *, timeout: float = 10.0) -> None:
    """Publish `bundle` retained (QoS 1) on each site's rules topic; HubError when the broker does not take it."""
    payload = json.dumps(bundle.model_dump(mode="json", by_alias=True), separators=(",", ":"))
    publish_retained(settings, [(site_topic(site_id, "rules"), payload) for site_id in sites_to], what="rules",
                     timeout=timeout)
