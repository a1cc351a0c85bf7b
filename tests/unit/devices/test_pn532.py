"""PN532 over HSU: devices.md vectors, the frame parser (hypothesis streams), and the driver against Pn532Chip."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.nfc_line import NfcRead
from edge.devices.pn532 import (
    ACK,
    ERROR_FRAME,
    IN_LIST_PASSIVE_TARGET_106A,
    NACK,
    RF_MAX_RETRIES,
    SAM_NORMAL,
    WAKE_UP,
    Control,
    Pn532Driver,
    Pn532Frame,
    Pn532FrameParser,
    decode_firmware_version,
    decode_passive_target,
    encode_command,
    encode_reply,
)
from edge.devices.pn532_frame import TFI_CHIP, TFI_HOST, encode_frame
from edge.devices.serial_line import Driver
from edge.errors import FrameError
from edge.simulator.pn532_chip import Pn532Chip

GET_FIRMWARE = bytes.fromhex("00 00 FF 02 FE D4 02 2A 00")
FIRMWARE_REPLY = bytes.fromhex("00 00 FF 06 FA D5 03 32 01 06 07 E8 00")
SAM = bytes.fromhex("00 00 FF 05 FB D4 14 01 14 01 02 00")
IN_LIST = bytes.fromhex("00 00 FF 04 FC D4 4A 01 00 E1 00")
CARD_REPLY = bytes.fromhex("00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 B0 86 4D 25 26 00")
NO_CARD_REPLY = encode_reply(0x4A, b"\x00")
UID4 = bytes.fromhex("B0864D25")
UID7 = bytes.fromhex("04A224E2B95C80")
CARD = NfcRead(UID4, atqa=0x0004, sak=0x08)

replies = st.one_of(
    st.binary(min_size=0, max_size=300).map(lambda params: encode_reply(0x4A, params)),
    st.sampled_from([ACK, NACK, ERROR_FRAME, CARD_REPLY, FIRMWARE_REPLY]),
)
# Noise without 00 (so it cannot start a frame) and without FF (so a postamble 00 plus noise cannot either).
noise = st.binary(max_size=20).map(lambda b: b.replace(b"\x00", b"").replace(b"\xff", b""))


def parsed(frame: bytes) -> Pn532Frame | Control | FrameError:
    (item,) = Pn532FrameParser().feed(frame)
    return item


def kinds(items: Sequence[object]) -> list[str]:
    return [f"!{item.kind}" if isinstance(item, FrameError) else type(item).__name__ for item in items]


# ------------------------------------------------------------------ codec


def test_devices_md_commands_encode_byte_for_byte() -> None:
    assert encode_command(0x02) == GET_FIRMWARE
    assert encode_command(0x14, b"\x01\x14\x01") == SAM == SAM_NORMAL
    assert encode_command(0x4A, b"\x01\x00") == IN_LIST == IN_LIST_PASSIVE_TARGET_106A


def test_max_retries_matches_libnfc() -> None:
    # RFConfiguration, item 5 (MaxRetries): MxRtyATR 0, MxRtyPSL 1, MxRtyPassiveActivation 2.
    assert RF_MAX_RETRIES == bytes.fromhex("00 00 FF 06 FA D4 32 05 00 01 02 F2 00")


def test_wake_up_is_0x55_0x55_then_zeros() -> None:
    assert WAKE_UP[:5] == bytes.fromhex("55 55 00 00 00") and set(WAKE_UP[2:]) == {0}


def test_devices_md_firmware_reply_decodes() -> None:
    frame = parsed(FIRMWARE_REPLY)
    assert isinstance(frame, Pn532Frame)
    version = decode_firmware_version(frame)
    assert (version.ic, version.version, version.revision) == (0x32, 1, 6)
    assert version.fields() == {"ic": "32", "firmware": "1.6", "support": 7}
    assert encode_reply(0x02, bytes([0x32, 1, 6, 7])) == FIRMWARE_REPLY


def test_devices_md_card_reply_decodes() -> None:
    frame = parsed(CARD_REPLY)
    assert isinstance(frame, Pn532Frame)
    read = decode_passive_target(frame)
    assert read == CARD
    assert read.fields() == {"uid": "B0864D25", "uid_length": 4, "atqa": "0004", "sak": "08"}


@pytest.mark.parametrize("uid", [UID7, bytes(range(1, 11))])
def test_seven_and_ten_byte_uids_follow_nfcidlength(uid: bytes) -> None:
    params = bytes([1, 1, 0x00, 0x44, 0x00, len(uid)]) + uid
    frame = parsed(encode_reply(0x4A, params))
    assert isinstance(frame, Pn532Frame)
    assert decode_passive_target(frame) == NfcRead(uid, atqa=0x0044, sak=0x00)


def test_no_card_is_none() -> None:
    frame = parsed(NO_CARD_REPLY)
    assert isinstance(frame, Pn532Frame) and decode_passive_target(frame) is None


@pytest.mark.parametrize(
    "params", [b"", b"\x01\x01\x00\x04\x08", b"\x01\x01\x00\x04\x08\x05" + bytes(5), b"\x01\x01\x00\x04\x08\x07\x01"]
)
def test_malformed_target_data_is_refused(params: bytes) -> None:
    with pytest.raises(ValueError):
        decode_passive_target(Pn532Frame(0x4B, params))


def test_ack_nack_and_error_frames() -> None:
    assert Pn532FrameParser().feed(ACK + NACK + ERROR_FRAME) == [Control.ACK, Control.NACK, Control.ERROR]


def test_extended_frames_both_ways() -> None:
    params = bytes(range(256)) + b"\x01\x02"
    frame = encode_reply(0x4A, params)
    assert frame[3:5] == b"\xff\xff" and frame[5:7] == (len(params) + 2).to_bytes(2, "big")
    assert Pn532FrameParser().feed(frame) == [Pn532Frame(0x4B, params)]
    assert Pn532FrameParser(tfi=TFI_HOST).feed(encode_command(0x40, params)) == [Pn532Frame(0x40, params)]


def test_long_preambles_and_split_frames() -> None:
    parser = Pn532FrameParser()
    stream = bytes(20) + CARD_REPLY + bytes(7) + FIRMWARE_REPLY
    assert [item for byte in stream for item in parser.feed(bytes([byte]))] == Pn532FrameParser().feed(stream)
    assert kinds(Pn532FrameParser().feed(stream)) == ["Pn532Frame", "Pn532Frame"]


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (CARD_REPLY[:4] + b"\xf5" + CARD_REPLY[5:], "lcs"),
        (CARD_REPLY[:-2] + b"\x27\x00", "dcs"),
        (CARD_REPLY[:12] + b"\x05" + CARD_REPLY[13:], "dcs"),  # a UID byte flipped
        (encode_frame(TFI_HOST, b"\x4b\x00"), "format"),  # the host's TFI coming back
        (bytes.fromhex("00 00 FF 01 FF D5 2B 00"), "format"),  # no command code
        (bytes.fromhex("00 00 FF FF FF 01 0B F4") + bytes(267) + b"\x00", "length"),  # LEN 267
        (bytes.fromhex("00 00 FF 00 00"), "length"),  # LEN 0 (not an ACK)
        (b"\x12\x34\x56\x78", "garbage"),
    ],
)
def test_broken_frames_give_one_typed_error_then_the_next_frame_reads(frame: bytes, kind: str) -> None:
    items = Pn532FrameParser().feed(frame + CARD_REPLY)
    assert kinds(items) == [f"!{kind}", "Pn532Frame"]
    assert items[-1] == parsed(CARD_REPLY)


def test_errors_never_carry_the_uid() -> None:
    (error,) = Pn532FrameParser().feed(CARD_REPLY[:-2] + b"\x27\x00")
    assert isinstance(error, FrameError) and UID4 not in error.data and error.data.startswith(b"\x00\xff")


def test_a_frame_cut_short_by_the_next_is_recovered() -> None:
    # The chip restarted mid-header: the next frame's start code hides in the broken one's LEN and LCS.
    assert kinds(Pn532FrameParser().feed(b"\x00\xff\x0c\x00\x00\xff" + CARD_REPLY[3:])) == ["!lcs", "Pn532Frame"]


def test_flush_drops_a_partial_frame() -> None:
    parser = Pn532FrameParser()
    assert parser.flush() is None
    parser.feed(bytes(5))  # preamble only: nothing held
    assert parser.pending == 0 and parser.flush() is None
    parser.feed(CARD_REPLY[:10])
    assert parser.pending == 9  # from the start code 00 FF on
    dropped = parser.flush()
    assert dropped is not None and dropped.kind == "timeout"
    assert parser.pending == 0
    assert kinds(parser.feed(CARD_REPLY[10:] + CARD_REPLY)) == ["!garbage", "Pn532Frame"]


def test_encode_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        encode_command(0x100)
    with pytest.raises(ValueError):
        encode_command(0x40, bytes(265))
    with pytest.raises(ValueError):
        encode_frame(0x7F, b"\x02")


@settings(max_examples=200, deadline=None)
@given(st.lists(replies, max_size=10), st.data())
def test_a_stream_split_anywhere_gives_the_same_items(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = Pn532FrameParser()
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    items = [item for piece in pieces for item in parser.feed(piece)]
    assert items == Pn532FrameParser().feed(stream)
    assert not any(isinstance(item, FrameError) for item in items) and len(items) == len(frames)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(noise, replies), max_size=12), noise, st.integers(min_value=1, max_value=40))
def test_frames_in_noise_are_all_found_in_order(pairs: list[tuple[bytes, bytes]], tail: bytes, chunk: int) -> None:
    stream = b"".join(junk + frame for junk, frame in pairs) + tail
    parser = Pn532FrameParser()
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    found = [item for item in items if not isinstance(item, FrameError)]
    assert found == [parsed(frame) for _, frame in pairs]
    assert all(item.kind == "garbage" for item in items if isinstance(item, FrameError))


# ------------------------------------------------------------------ driver against the chip


class Bench:
    """The driver and the chip on one line, with a fake clock; records what the host sent."""

    def __init__(self, chip: Pn532Chip | None = None, **driver_args: float) -> None:
        self.chip = chip or Pn532Chip()
        self.driver = Pn532Driver(**driver_args)
        self.now = 0.0
        self.sent: list[bytes] = []
        self.items: list[NfcRead | FrameError] = []
        self._send(self.driver.start())

    def _send(self, data: bytes) -> None:
        if data:
            self.sent.append(data)
        self.items += self.driver.feed(self.chip.feed(data))

    def run(self, seconds: float, step: float = 0.05) -> list[NfcRead | FrameError]:
        """Advance the clock, polling as the serial line does; return what came out meanwhile."""
        before = len(self.items)
        for _ in range(round(seconds / step)):
            self.now += step
            self._send(self.driver.poll(self.now))
        return self.items[before:]


def errors(items: Sequence[object]) -> list[str]:
    return [item.kind for item in items if isinstance(item, FrameError)]


def test_meets_the_serial_line_driver_protocol() -> None:
    driver: Driver = Pn532Driver()  # checked by mypy
    assert driver.start() == WAKE_UP + SAM and driver.pending == 0


def test_no_response_is_handed_out_by_the_next_feed() -> None:
    driver = Pn532Driver(reply_timeout=0.5)
    driver.start()
    assert driver.poll(0.0) == b""
    assert driver.poll(0.6) == WAKE_UP + SAM  # a fresh start
    assert errors(driver.feed(b"")) == ["no_response"]
    assert driver.poll(1.2) == WAKE_UP + SAM
    assert driver.feed(b"") == []  # the same silence


def test_driver_wakes_and_configures_the_chip_then_polls() -> None:
    bench = Bench()
    assert bench.sent[0] == WAKE_UP + SAM
    assert bench.run(1.0) == []  # no card: nothing, and no error
    assert bench.sent[1] == RF_MAX_RETRIES
    assert set(bench.sent[2:]) == {IN_LIST}
    assert bench.chip.commands[:2] == [0x14, 0x32]
    assert 5 <= len(bench.sent[2:]) <= 8  # every 0.15 s


def test_the_chip_ignores_everything_before_the_wake_up() -> None:
    chip = Pn532Chip()
    assert chip.feed(SAM + IN_LIST) == b""
    assert chip.feed(WAKE_UP + SAM) == ACK + encode_reply(0x14)
    assert chip.feed(GET_FIRMWARE) == ACK + FIRMWARE_REPLY


@pytest.mark.parametrize(("uid", "atqa", "sak"), [(UID4, 0x0004, 0x08), (UID7, 0x0044, 0x00)])
def test_driver_reads_a_card_on_every_poll(uid: bytes, atqa: int, sak: int) -> None:
    bench = Bench()
    bench.run(0.5)
    bench.chip.present(uid, atqa=atqa, sak=sak)
    items = bench.run(1.5)
    assert errors(items) == []
    assert set(items) == {NfcRead(uid, atqa=atqa, sak=sak)} and len(items) >= 8
    bench.chip.present(None)
    bench.run(0.2)
    assert bench.run(1.0) == []


def test_driver_recovers_after_the_chip_goes_silent_with_one_error_per_silence() -> None:
    bench = Bench()
    bench.chip.present(UID4)
    assert CARD in bench.run(0.5)
    for _ in range(2):
        bench.chip.silent = True
        silent = bench.run(5.0)  # several reply timeouts, each followed by a fresh wake-up
        assert errors(silent) == ["no_response"]
        assert sum(1 for data in bench.sent[-20:] if data == WAKE_UP + SAM) >= 3
        bench.chip.silent = False
        back = bench.run(1.0)
        assert errors(back) == [] and CARD in back


def test_driver_nacks_a_corrupted_reply_and_still_reads_the_card() -> None:
    bench = Bench()
    bench.chip.present(UID4)
    bench.run(0.5)
    sent_before = len(bench.sent)
    bench.chip.corrupt_next_reply()
    items = bench.run(0.15)
    assert errors(items) == ["dcs"]
    assert NACK in bench.sent[sent_before:]
    assert CARD in items
    assert WAKE_UP + SAM not in bench.sent[sent_before:]  # no start over


def test_a_reply_still_corrupt_after_three_nacks_starts_over() -> None:
    driver = Pn532Driver()
    driver.start()
    driver.poll(0.0)
    broken = CARD_REPLY[:-2] + b"\x27\x00"
    sent = []
    for step in range(4):
        assert errors(driver.feed(ACK + broken if step == 0 else broken)) == ["dcs"]
        sent.append(driver.poll(0.01 * (step + 1)))
    assert sent == [NACK, NACK, NACK, WAKE_UP + SAM]


def bench_in_list() -> tuple[Pn532Driver, float]:
    """A driver past configuration with InListPassiveTarget in flight."""
    driver = Pn532Driver()
    driver.start()
    driver.poll(0.0)
    driver.feed(ACK + encode_reply(0x14))
    assert driver.poll(0.01) == RF_MAX_RETRIES
    driver.feed(ACK + encode_reply(0x32))
    assert driver.poll(0.02) == IN_LIST
    return driver, 0.02


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (ERROR_FRAME, "chip_error"),
        (FIRMWARE_REPLY, "unexpected"),  # answers another command
        (NACK, "unexpected"),
        (encode_reply(0x4A, b"\x01\x01\x00\x04\x08\x05" + bytes(5)), "unexpected"),  # NFCIDLength 5
    ],
)
def test_chip_errors_and_unexpected_replies_start_over(reply: bytes, kind: str) -> None:
    driver, now = bench_in_list()
    assert errors(driver.feed(ACK + reply)) == [kind]
    assert driver.poll(now + 0.01) == WAKE_UP + SAM


def test_in_list_replies_give_reads_or_nothing() -> None:
    driver, now = bench_in_list()
    assert driver.feed(ACK + CARD_REPLY) == [CARD]
    assert driver.poll(now + 0.05) == b""  # one command per poll_interval
    assert driver.poll(now + 0.15) == IN_LIST
    assert driver.feed(ACK + NO_CARD_REPLY) == []
    ten = bytes(range(1, 11))
    driver.poll(now + 0.30)
    assert driver.feed(encode_reply(0x4A, bytes([1, 1, 0x03, 0x44, 0x20, 10]) + ten + b"\x05\x75\x77\x81\x02")) == [
        NfcRead(ten, atqa=0x0344, sak=0x20)  # an ATS after the UID is ignored
    ]


def test_replies_are_read_whatever_the_split() -> None:
    stream = ACK + CARD_REPLY
    for cut in range(len(stream) + 1):
        driver, _ = bench_in_list()
        assert driver.feed(stream[:cut]) + driver.feed(stream[cut:]) == [CARD]


def test_driver_flush_reports_a_dropped_frame() -> None:
    driver, _ = bench_in_list()
    assert driver.flush() is None
    driver.feed(CARD_REPLY[:9])
    assert driver.pending > 0
    dropped = driver.flush()
    assert dropped is not None and dropped.kind == "timeout" and driver.pending == 0


def test_chip_checks_its_inputs() -> None:
    chip = Pn532Chip()
    with pytest.raises(ValueError):
        chip.present(bytes(5))
    chip.feed(WAKE_UP)
    assert chip.feed(encode_command(0x60, b"\x01")) == ACK + ERROR_FRAME  # a command it does not play
    assert chip.feed(SAM[:-2] + b"\x00\x00") == b""  # a broken frame gets no answer
    assert chip.feed(NACK) == ERROR_FRAME  # NACK: its last reply again
    assert chip.feed(SAM) == ACK + encode_frame(TFI_CHIP, b"\x15")
    assert chip.feed(NACK) == encode_reply(0x14)
