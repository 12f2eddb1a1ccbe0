"""The sans-I/O MLLP framer: every split offset of 1–3 frames, several frames per chunk, each error state."""

from __future__ import annotations

import pytest

from server.hl7.framing import FrameTooLarge, MissingTrailingCR, MllpFramer, frame

MESSAGES = [
    b"MSH|^~\\&|A|B|C|D|20240101||QBP^Q22^QBP_Q21|1|P|2.5\rQPD|IHE PDQ Query|t1|@PID.5.1^\xc3\x86r\xc3\xb8e\r",
    b"MSH|^~\\&|A|B|C|D|20240101||QBP^Q23^QBP_Q21|2|P|2.5\rQPD|IHE PIX Query|t2|123^^^FNR\r",
    b"MSH|^~\\&|A|B|C|D|20240101||QRY^A19|3|P|2.3\rQRD|20240101|R|I|q3|||10^RD|123|DEM\r",
]


def _feed_split(stream: bytes, cuts: list[int], max_frame: int = 1 << 20) -> list[bytes]:
    framer = MllpFramer(max_frame)
    out: list[bytes] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[last:cut])
        last = cut
    assert framer.idle
    return out


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_split_offset(count: int) -> None:
    messages = MESSAGES[:count]
    stream = b"".join(frame(m) for m in messages)
    for cut in range(len(stream) + 1):
        assert _feed_split(stream, [cut]) == messages, cut


def test_every_pair_of_split_offsets_over_two_frames() -> None:
    messages = MESSAGES[:2]
    stream = b"".join(frame(m) for m in messages)
    for a in range(0, len(stream) + 1, 3):
        for b in range(a, len(stream) + 1, 7):
            assert _feed_split(stream, [a, b]) == messages


def test_byte_by_byte_and_all_in_one_chunk() -> None:
    stream = b"".join(frame(m) for m in MESSAGES)
    assert _feed_split(stream, list(range(1, len(stream)))) == MESSAGES
    framer = MllpFramer()
    assert framer.feed(stream * 3) == MESSAGES * 3


def test_whitespace_and_nul_between_frames_are_skipped() -> None:
    stream = b"\r\n\x00" + frame(MESSAGES[0]) + b"\x00\x00\r\n" + frame(MESSAGES[1]) + b"\n"
    assert MllpFramer().feed(stream) == MESSAGES[:2]


JUNK = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x1c\r" + b"01018012345"


def _feed_all(stream: bytes, cuts: list[int]) -> tuple[list[bytes], MllpFramer]:
    framer = MllpFramer()
    out: list[bytes] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[last:cut])
        last = cut
    return out, framer


def test_junk_before_a_start_block_is_skipped_and_the_next_frame_answered() -> None:
    framer = MllpFramer()
    assert framer.feed(frame(MESSAGES[0])) == [MESSAGES[0]]
    assert framer.feed(b"GET / HTTP/1.1\r\n") == []
    assert framer.error is None and framer.idle
    assert framer.feed(frame(MESSAGES[1])) == [MESSAGES[1]]
    assert (framer.junk_runs, framer.junk_bytes) == (1, len(b"GET / HTTP/1.1\r\n"))


def test_junk_at_every_split_offset_gives_the_same_frames_and_counters() -> None:
    """Junk before the first frame, between frames and at the end, the stream cut at every offset (and at
    every pair of offsets, in steps): the same frames and the same counters each time."""
    stream = JUNK + frame(MESSAGES[0]) + b"\r\n" + JUNK + frame(MESSAGES[1]) + b"x" + frame(MESSAGES[2]) + JUNK
    expected_bytes = 3 * len(JUNK) + 1
    for cut in range(len(stream) + 1):
        out, framer = _feed_all(stream, [cut])
        assert out == MESSAGES, cut
        assert (framer.junk_runs, framer.junk_bytes, framer.error) == (4, expected_bytes, None), cut
        assert framer.idle
    for a in range(0, len(stream) + 1, 5):
        for b in range(a, len(stream) + 1, 11):
            out, framer = _feed_all(stream, [a, b])
            assert out == MESSAGES and (framer.junk_runs, framer.junk_bytes) == (4, expected_bytes)


def test_junk_byte_by_byte_is_never_buffered() -> None:
    framer = MllpFramer(max_frame=10)  # junk is no frame: a megabyte of it is no FrameTooLarge
    for _ in range(1000):
        assert framer.feed(b"z" * 1000) == []
    assert framer.feed(frame(b"MSH|1")) == [b"MSH|1"]
    assert (framer.junk_runs, framer.junk_bytes) == (1, 1_000_000)


def test_a_frame_cut_short_by_a_new_start_block_is_not_junk() -> None:
    # inside a frame a start block is content (the handler NAKs what it cannot read); framing stays in step
    assert MllpFramer().feed(b"\x0bMSH|half\x0bMSH|2\x1c\r") == [b"MSH|half\x0bMSH|2"]


@pytest.mark.parametrize("cut", [0, 1, 5, 50, 99, 100, 101])
def test_frame_over_the_limit_at_any_split(cut: int) -> None:
    stream = frame(b"x" * 101)
    framer = MllpFramer(max_frame=100)
    with pytest.raises(FrameTooLarge):
        framer.feed(stream[:cut])
        framer.feed(stream[cut:])


def test_frame_at_the_limit_passes_and_unterminated_oversize_is_caught_early() -> None:
    assert MllpFramer(max_frame=100).feed(frame(b"y" * 100)) == [b"y" * 100]
    framer = MllpFramer(max_frame=100)
    with pytest.raises(FrameTooLarge):
        for _ in range(10):
            framer.feed(b"\x0b" + b"z" * 60 if _ == 0 else b"z" * 60)


@pytest.mark.parametrize("cut", range(8))
def test_end_block_not_followed_by_cr(cut: int) -> None:
    stream = b"\x0bMSH|1\x1cX"
    framer = MllpFramer()
    with pytest.raises(MissingTrailingCR) as err:
        framer.feed(stream[:cut])
        framer.feed(stream[cut:])
    assert err.value.content == b"MSH|1"


def test_frames_before_an_error_in_the_same_chunk_are_returned_then_the_error_raised() -> None:
    framer = MllpFramer()
    good = frame(MESSAGES[0])
    assert framer.feed(good + b"\x0bpartial") == [MESSAGES[0]]
    assert not framer.idle and framer.error is None
    framer = MllpFramer()
    assert framer.feed(good + b"\x0bMSH|2\x1cX") == [MESSAGES[0]]
    assert isinstance(framer.error, MissingTrailingCR)
    with pytest.raises(MissingTrailingCR):
        framer.feed(b"")


def test_bad_limit() -> None:
    with pytest.raises(ValueError):
        MllpFramer(0)
