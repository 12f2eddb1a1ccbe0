"""Sans-I/O MLLP framer: bytes in, complete frames out, a typed error per broken state. No I/O.

MLLP (HL7 v2 Minimal Lower Layer Protocol, release 1) wraps each message as
``0x0B <message> 0x1C 0x0D``. The framer is a four-state machine after HAPI's MLLP decoder:

    BETWEEN ──0x0B──▶ IN_FRAME ──0x1C──▶ AFTER_END ──0x0D──▶ BETWEEN (frame emitted)
       │                 ▲
       └─other──▶ SKIPPING ──0x0B──┘

- BETWEEN: CR, LF, NUL, space and tab are skipped (GE Centricity and others send NULs or a line end
  between frames, Mirth #249); any other byte starts a run of junk.
- SKIPPING: every byte up to the next start block is dropped (never buffered) and counted:
  :attr:`MllpFramer.junk_runs` and :attr:`MllpFramer.junk_bytes`. The frame that follows is answered as
  usual, so a broker that sent a stray byte (an HTTP probe, a half-written frame of a dead connection)
  need not reconnect. The caller logs the counters, never the bytes.
- IN_FRAME: bytes are collected until the end block; more than ``max_frame`` bytes of content is
  :class:`FrameTooLarge` (raised as soon as the limit is passed, so a hostile peer cannot make us
  buffer more than ``max_frame`` plus one read).
- AFTER_END: the byte after 0x1C must be 0x0D, else :class:`MissingTrailingCR`, which carries the
  complete frame content so the caller can still answer it before closing.

Own code rather than python-hl7's ``MLLPStreamReader`` because that reader is tied to asyncio
streams, uses asyncio's 64 KiB line limit and has no typed error for junk.
After an error the framer is spent: the byte stream is out of sync and the connection must close (junk
is no error: :class:`JunkBeforeStartBlock` is kept for callers that name it, and no longer raised).
Scanning uses ``bytes.find`` from where the last read stopped, so a frame split over many reads costs
O(total bytes), not O(reads × size).
"""

from __future__ import annotations

__all__ = ["CR", "EB", "SB", "FrameTooLarge", "FramingError", "JunkBeforeStartBlock", "MllpFramer",
           "MissingTrailingCR", "frame"]

SB = b"\x0b"
EB = b"\x1c"
CR = b"\x0d"
_GAP = frozenset(b"\r\n\x00 \t")
_BETWEEN, _IN_FRAME, _AFTER_END, _SKIPPING = 0, 1, 2, 3


class FramingError(Exception):
    """The byte stream is not MLLP; ``offset`` is the position in the stream where it broke."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


class JunkBeforeStartBlock(FramingError):
    """Kept for callers that name it: junk before a start block is now skipped and counted, not raised."""


class FrameTooLarge(FramingError):
    """A frame's content exceeds the configured limit."""


class MissingTrailingCR(FramingError):
    """The end block 0x1C is not followed by 0x0D. ``content`` is the frame that ended there."""

    def __init__(self, message: str, offset: int, content: bytes) -> None:
        super().__init__(message, offset)
        self.content = content


def frame(message: bytes) -> bytes:
    """``message`` wrapped in an MLLP frame."""
    return SB + message + EB + CR


class MllpFramer:
    """Feed bytes as they arrive; :meth:`feed` returns the frame contents completed by them, in order."""

    def __init__(self, max_frame: int = 1 << 20) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be at least 1")
        self.max_frame = max_frame
        self._state = _BETWEEN
        self._buf = bytearray()
        self._scan = 0  # how far into _buf the end block has been searched for
        self._consumed = 0  # stream offset of _buf[0]
        self._failed: FramingError | None = None
        self.junk_runs = 0  # runs of junk skipped before a start block
        self.junk_bytes = 0  # bytes in them

    @property
    def idle(self) -> bool:
        """True when no partial frame is buffered (a clean point to close the connection)."""
        return self._state in (_BETWEEN, _SKIPPING) and not self._buf

    @property
    def error(self) -> FramingError | None:
        """The error that spent the framer, if any (see :meth:`feed`)."""
        return self._failed

    def feed(self, data: bytes) -> list[bytes]:
        """Frames completed by ``data``. On a framing error the frames completed before it in the same
        chunk are still returned (answer them) and the error is raised by the next call and kept in
        :attr:`error`; with no such frames it is raised at once."""
        if self._failed is not None:
            raise self._failed
        out: list[bytes] = []
        try:
            self._feed(data, out)
        except FramingError as exc:
            self._failed = exc
            self._buf.clear()
            if not out:
                raise
        return out

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        buf = self._buf
        buf += data
        pos = self._scan + 1 if self._state == _AFTER_END else 0
        n = len(buf)
        while pos < n:
            if self._state == _BETWEEN:
                b = buf[pos]
                if b == 0x0B:
                    self._state = _IN_FRAME
                    pos += 1
                    del buf[:pos]
                    self._consumed += pos
                    pos, n, self._scan = 0, len(buf), 0
                elif b in _GAP:
                    pos += 1
                else:
                    self._state = _SKIPPING
                    self.junk_runs += 1
            elif self._state == _SKIPPING:
                start = buf.find(0x0B, pos)
                self.junk_bytes += (n if start < 0 else start) - pos
                pos = n if start < 0 else start
                if start >= 0:
                    self._state = _BETWEEN
            elif self._state == _IN_FRAME:
                end = buf.find(0x1C, self._scan)
                if end < 0:
                    if n > self.max_frame:
                        raise FrameTooLarge(f"frame larger than {self.max_frame} bytes", self._consumed + n)
                    self._scan = n
                    pos = n
                else:
                    if end > self.max_frame:
                        raise FrameTooLarge(f"frame larger than {self.max_frame} bytes", self._consumed + end)
                    self._state = _AFTER_END
                    self._scan = end
                    pos = end + 1
            else:  # _AFTER_END: buf[self._scan] is the end block
                content = bytes(buf[: self._scan])
                if buf[pos] != 0x0D:
                    raise MissingTrailingCR(f"end block 0x1c followed by 0x{buf[pos]:02x}, not 0x0d",
                                            self._consumed + pos, content)
                out.append(content)
                pos += 1
                del buf[:pos]
                self._consumed += pos
                pos, n, self._scan = 0, len(buf), 0
                self._state = _BETWEEN
        if self._state in (_BETWEEN, _SKIPPING):
            self._consumed += len(buf)
            buf.clear()
