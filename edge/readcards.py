"""`marquee-edge read-cards`: the technician's view of one reader, one line per read or error as it happens.

Reads go through the same parser and the same card identity as in the agent, so what this prints is what
the box will hash: `card_id` is the canonical id (a payment card masked to first 6 and last 4) and `token`
the chain's token when a pepper is configured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge.devices.families import FAMILIES, card_id, fields_of
from edge.devices.rdm6300 import Debouncer
from edge.errors import FrameError
from edge.settings import ReaderSettings
from protocol.cards import CardIdError, CardScheme, card_token


class CardPrinter:
    """Turns a reader's items into printed lines (`emit` gets each); repeats of a resting card shown once."""

    def __init__(self, reader: ReaderSettings, *, scheme: CardScheme, pepper: bytes | None, as_json: bool,
                 emit: Callable[[str], None], show_repeats: bool = False) -> None:
        self.reader = reader
        self.scheme = scheme
        self._pepper = pepper
        self._json = as_json
        self._emit = emit
        self._debouncer = None if show_repeats else Debouncer(FAMILIES[reader.kind].debounce_s)
        self.reads = 0
        self.errors = 0

    def item(self, item: object) -> None:
        """Print one parsed item (a read, a reader's notice or a FrameError)."""
        now = datetime.now(UTC)
        if isinstance(item, FrameError):
            self.errors += 1
            self._line(now, {"error": item.kind, "detail": item.detail, "data": item.data.hex(" ")})
            return
        fields = fields_of(item)
        try:
            card = card_id(item, self.scheme)
        except CardIdError as exc:
            self.errors += 1
            self._line(now, {"error": "card_id", "detail": str(exc), "kind": self.reader.kind, "fields": fields})
            return
        if card is None:
            self._line(now, {"notice": self.reader.kind, "fields": fields})
            return
        token = card_token(self._pepper, card) if self._pepper else None
        if self._debouncer is not None and not self._debouncer.accept(token or card.text, time.monotonic()):
            return
        self.reads += 1
        self._line(now, {"kind": self.reader.kind, "card_id": card.display, "token": token, "fields": fields})

    def state(self, state: str) -> None:
        """The port went up or down."""
        self._line(datetime.now(UTC), {"port": self.reader.port, "state": state})

    def _line(self, at: datetime, record: dict[str, object]) -> None:
        stamped = {"at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), **record}
        if self._json:
            self._emit(json.dumps(stamped, separators=(",", ":")))
            return
        clock = at.strftime("%H:%M:%S.%f")[:-3]
        if "error" in record:
            text = f"{clock}  error  {record['error']}: {record.get('detail', '')}"
            if record.get("data"):
                text += f"  [{record['data']}]"
        elif "notice" in record:
            text = f"{clock}  notice {_fields_text(record['fields'])}"
        elif "state" in record:
            text = f"{clock}  port   {record['port']} is {record['state']}"
        else:
            token = record["token"]
            text = f"{clock}  read   {record['card_id']}"
            text += f"  token {str(token)[:16]}…" if token else "  (no pepper: no token)"
            text += f"  {_fields_text(record['fields'])}"
        self._emit(text)


def _fields_text(fields: object) -> str:
    if not isinstance(fields, dict):
        return ""
    return " ".join(f"{key}={value}" for key, value in fields.items())
