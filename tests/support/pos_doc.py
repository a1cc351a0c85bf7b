"""The examples of docs/pos-protocol.md, read from the page itself so the tests hold the page to the box.

Each example is the code block after an `<!-- example: NAME -->` marker: JSON as text, hex dumps as bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "pos-protocol.md"
_EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) -->\n```[a-z]*\n(.*?)```", re.S)
_HEX_LINE = re.compile(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ?)+)")


def doc_text() -> str:
    """The page as vendors read it."""
    return DOC.read_text(encoding="utf-8")


def examples() -> dict[str, str]:
    """Every marked example block, by name."""
    return {name: body for name, body in _EXAMPLE.findall(doc_text())}


def example_json(name: str) -> bytes:
    """A JSON example as the wire carries it: one line, no whitespace between lines."""
    return "".join(line.strip() for line in examples()[name].splitlines()).encode()


def example_hex(name: str) -> bytes:
    """The bytes of a hex-dump example (offset, hex bytes, ASCII column)."""
    out = bytearray()
    for line in examples()[name].splitlines():
        match = _HEX_LINE.match(line)
        assert match, f"not a hex dump line in example {name}: {line!r}"
        out.extend(bytes.fromhex(match.group(1)))
    return bytes(out)
