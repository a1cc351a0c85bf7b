"""What every parser promises, whatever arrives on its line: random bytes and silences never raise, memory
stays within the stated bound, a silence empties it, and errors that may hold card digits hold none.

One test for every family, so a new family joins by adding a row to FAMILIES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices import barcode, magstripe, nfc_line, pn532_frame, pos, rdm6300, wiegand
from edge.devices.pn532 import Pn532Driver
from edge.devices.serial_line import Parser
from edge.errors import FrameError


@dataclass(frozen=True)
class Family:
    make: Callable[[], Parser]
    max_pending: int
    items: tuple[type, ...]
    masks_digits: bool = False


FAMILIES = {
    "rdm6300": Family(rdm6300.Rdm6300Parser, rdm6300.FRAME_LEN, (rdm6300.CardRead,)),
    "pos": Family(pos.PosFrameParser, pos.MAX_PAYLOAD + 2, (pos.PosFrame, pos.PosControl)),
    "magstripe": Family(magstripe.MagstripeParser, magstripe.MAX_LINE,
                        (magstripe.MagstripeRead, magstripe.ReaderNotice), masks_digits=True),
    "magstripe-lrc": Family(lambda: magstripe.MagstripeParser(lrc=True), magstripe.MAX_LINE,
                            (magstripe.MagstripeRead, magstripe.ReaderNotice), masks_digits=True),
    "nfc-line": Family(nfc_line.NfcLineParser, nfc_line.MAX_LINE, (nfc_line.NfcRead,), masks_digits=True),
    "nfc-line-reversed": Family(lambda: nfc_line.NfcLineParser(reverse=True), nfc_line.MAX_LINE,
                                (nfc_line.NfcRead,), masks_digits=True),
    "pn532-frames": Family(pn532_frame.Pn532FrameParser, pn532_frame.MAX_PENDING,
                           (pn532_frame.Pn532Frame, pn532_frame.Control)),
    "wiegand-bits": Family(wiegand.WiegandParser, wiegand.MAX_LINE, (wiegand.WiegandRead,), masks_digits=True),
    "wiegand-hex": Family(lambda: wiegand.WiegandParser(output="hex"), wiegand.MAX_LINE, (wiegand.WiegandRead,),
                          masks_digits=True),
    "wiegand-decimal": Family(lambda: wiegand.WiegandParser(output="decimal", bits=34), wiegand.MAX_LINE,
                              (wiegand.WiegandRead,), masks_digits=True),
    "barcode": Family(barcode.BarcodeParser, barcode.MAX_LINE, (barcode.BarcodeRead,), masks_digits=True),
    "barcode-aim": Family(lambda: barcode.BarcodeParser(aim=True), barcode.MAX_LINE, (barcode.BarcodeRead,),
                          masks_digits=True),
}
# Bytes each family gives meaning to, so random streams hit the parsers' states, not only their garbage path.
INTERESTING = st.sampled_from(b"\x00\x02\x03\x06\x10\x15\r\n%;+?^=EB0189AF:xT] \xd5\xff")
chunks = st.lists(
    st.one_of(st.binary(max_size=300), st.lists(INTERESTING, max_size=80).map(bytes), st.none()), max_size=25)


@pytest.mark.parametrize("name", list(FAMILIES))
@settings(max_examples=150, deadline=None)
@given(stream=chunks)
def test_random_bytes_and_silences_never_raise_and_memory_stays_bounded(name: str, stream: list[bytes | None]) -> None:
    family = FAMILIES[name]
    parser = family.make()
    for chunk in stream:
        if chunk is None:  # the line went silent
            dropped = parser.flush()
            assert dropped is None or (isinstance(dropped, FrameError) and dropped.kind == "timeout")
            assert parser.pending == 0
            continue
        for item in parser.feed(chunk):
            assert isinstance(item, (FrameError, *family.items)), item
            if isinstance(item, FrameError) and family.masks_digits:
                assert not set(item.data) & set(b"0123456789"), (item.kind, item.data)
        assert 0 <= parser.pending <= family.max_pending


@settings(max_examples=150, deadline=None)
@given(stream=chunks, steps=st.lists(st.floats(0, 2), min_size=25, max_size=25))
def test_the_pn532_driver_never_raises_and_always_knows_what_to_send(
    stream: list[bytes | None], steps: list[float]
) -> None:
    driver, now = Pn532Driver(), 0.0
    assert driver.start()
    for chunk, step in zip(stream, steps, strict=False):
        now += step
        if chunk is None:
            driver.flush()
        else:
            for item in driver.feed(chunk):
                assert isinstance(item, FrameError | nfc_line.NfcRead)
        assert isinstance(driver.poll(now), bytes)
        assert driver.pending <= pn532_frame.MAX_PENDING
