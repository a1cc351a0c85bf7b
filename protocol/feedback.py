"""The feedback code a ticket carries (printed as a QR code), from which a filmgoer reaches the site's feedback form.

It is derived from the hash of the sale's event, so the box knows it the moment it answers the till (offline too:
the box seals the event in its hash chain before it answers) and the hub knows it once the sale syncs, with no
secret of its own. Unguessable as the hash is (the event carries random bytes in its id); 16 characters of
Crockford's base32 (digits and capitals without I, L, O, U) of the hash's first 80 bits, easy to type from a
ticket. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from typing import Final

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH: Final = 16
CODE_BITS: Final = 80
CODE_PATTERN: Final = r"^[0-9A-HJKMNP-TV-Z]{16}$"
FEEDBACK_URL_PATTERN: Final = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)*$"
"""Where the chain's feedback form is (`RuleBundle.feedback_url`): http or https, a host, an optional port and
path, no query; a ticket's link is `<feedback_url>/<site>/<code>`."""

_HASH = re.compile(r"^[0-9a-f]{64}$")
_CODE = re.compile(CODE_PATTERN)
_TYPED = str.maketrans("ILO", "110")  # Crockford's reading of what people type: I and L are 1, O is 0


def ticket_code(event_hash: str) -> str:
    """The feedback code of the sale whose event hash is `event_hash` (64 lower-case hex digits)."""
    if not _HASH.match(event_hash):
        raise ValueError("an event hash is 64 lower-case hex digits")
    bits = int(event_hash[: CODE_BITS // 4], 16)
    return "".join(CROCKFORD[(bits >> shift) & 31] for shift in range(CODE_BITS - 5, -1, -5))


def normal_code(text: str) -> str | None:
    """A code as typed or scanned (lower case, I, L or O for 1 and 0) in its canonical form; None when it
    cannot be one."""
    if len(text) != CODE_LENGTH:
        return None
    code = text.upper().translate(_TYPED)
    return code if _CODE.match(code) else None


def feedback_link(feedback_url: str, site_id: str, code: str) -> str:
    """The address a ticket's QR code carries: the chain's feedback address, the site, the code."""
    return f"{feedback_url.rstrip('/')}/{site_id}/{code}"
