"""Flood and abuse limits on what a peer sends, checked on the raw frames before h2 sees them.

h2 answers each frame correctly, but it answers every one: a peer may make it ACK a million PINGs,
open and reset streams as fast as it can send (HTTP/2 "rapid reset", CVE-2023-44487), or send a
header block in endless CONTINUATION frames that h2 buffers before HPACK can judge its size
(CVE-2024-27316 style). ``FrameGuard`` reads only the 9-byte frame headers of the incoming bytes
(cheap: a few per read) and tells the core when a peer crossed a limit, so the connection ends
with GOAWAY(ENHANCE_YOUR_CALM) before any of that is buffered or answered.
"""

from __future__ import annotations

import struct
from typing import Optional, Union

from codec.http2_errors import ENHANCE_YOUR_CALM, FRAME_SIZE_ERROR

from .options import ConnectionOptions

__all__ = ["FrameGuard", "TokenBucket", "Violation"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x9
_ACK = 0x1
_END_HEADERS = 0x4

_unpack_word = struct.Struct(">I").unpack_from


class Violation(Exception):
    """The peer crossed a limit: end the connection with this HTTP/2 error code and message."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class TokenBucket:
    """``rate`` events per second on average, ``burst`` at once."""

    __slots__ = ("_last", "_rate", "_tokens", "burst")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: Optional[float] = None

    def take(self, now: float) -> bool:
        """Spend one token; False when the bucket is empty (the limit is crossed)."""
        last = self._last
        if last is not None:
            self._tokens = min(self.burst, self._tokens + (now - last) * self._rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class FrameGuard:
    """Follows the frame headers of everything the peer sends and enforces the flood limits."""

    __slots__ = (
        "_block",
        "_block_limit",
        "_head",
        "_in_block",
        "_max_frame_size",
        "_pings",
        "_preface_left",
        "_resets",
        "_settings",
        "_skip",
    )

    def __init__(self, options: ConnectionOptions, *, server_side: bool) -> None:
        self._preface_left = len(PREFACE) if server_side else 0
        self._head = b""  # a frame header split across reads
        self._skip = 0  # payload bytes of the current frame still to come
        self._in_block = False  # inside a header block (no END_HEADERS yet)
        self._block = 0  # encoded bytes of that header block so far
        self._block_limit = options.header_block_limit
        self._max_frame_size = options.max_frame_size
        self._pings = TokenBucket(*options.ping_flood_limit)
        self._settings = TokenBucket(*options.settings_flood_limit)
        self._resets = TokenBucket(*options.reset_flood_limit)

    def feed(self, data: Union[bytes, bytearray, memoryview], now: float) -> None:
        """Check the frames ``data`` starts or completes; raises Violation.

        ``data`` may be a view of a read buffer the driver reuses: nothing of it is kept.
        """
        pos = 0
        n = len(data)
        if self._preface_left:
            taken = min(self._preface_left, n)
            self._preface_left -= taken
            pos = taken
        if self._skip:
            taken = min(self._skip, n - pos)
            self._skip -= taken
            pos += taken
        if self._head:
            piece = data[pos : pos + 9 - len(self._head)]
            self._head += bytes(piece)
            pos += len(piece)
            if len(self._head) < 9:
                return
            head, self._head = self._head, b""
            pos += self._frame(head, 0, now) - 9  # its payload follows in ``data``
        max_size = self._max_frame_size
        block_limit = self._block_limit
        while pos < n:
            if n - pos < 9:
                self._head = bytes(data[pos:])
                return
            # The frames a call is made of, checked here without a call per frame: DATA
            # (flow control bounds it) and a HEADERS frame that is a whole header block.
            word: int = _unpack_word(data, pos)[0]
            length = word >> 8
            kind = word & 0xFF
            if length <= max_size and (
                kind == _DATA
                or (kind == _HEADERS and length <= block_limit and data[pos + 4] & _END_HEADERS)
            ):
                if kind == _HEADERS:
                    self._block = length
                    self._in_block = False
                pos += 9 + length
            else:
                pos += self._frame(data, pos, now)
        if pos > n:
            self._skip = pos - n

    def _frame(self, buf: Union[bytes, bytearray, memoryview], at: int, now: float) -> int:
        """Check one frame header at ``buf[at:at+9]``; returns 9 + its payload length."""
        word: int = _unpack_word(buf, at)[0]  # length (24 bits) and type (8 bits) at once
        length = word >> 8
        if length > self._max_frame_size:
            # h2 would buffer the whole frame (up to 16 MiB) before judging its length.
            raise Violation(
                FRAME_SIZE_ERROR,
                f"frame of {length} bytes above SETTINGS_MAX_FRAME_SIZE {self._max_frame_size}",
            )
        kind = word & 0xFF
        if kind == _DATA:
            pass
        elif kind in (_HEADERS, _CONTINUATION):
            flags = buf[at + 4]
            self._block = (self._block if kind == _CONTINUATION else 0) + length
            if self._block > self._block_limit:
                raise Violation(
                    ENHANCE_YOUR_CALM,
                    f"header block of more than {self._block_limit} bytes",
                )
            self._in_block = not flags & _END_HEADERS
        elif kind == _PING:
            if not buf[at + 4] & _ACK and not self._pings.take(now):
                raise Violation(ENHANCE_YOUR_CALM, "ping flood")
        elif kind == _SETTINGS:
            if buf[at + 4] & _ACK:
                if length:
                    # RFC 9113 §6.5: an ACK carries no settings; a payload is a connection
                    # error of type FRAME_SIZE_ERROR (hyperframe's parse error would make h2
                    # say PROTOCOL_ERROR).
                    raise Violation(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            elif not self._settings.take(now):
                raise Violation(ENHANCE_YOUR_CALM, "settings flood")
        elif kind == _RST_STREAM and not self._resets.take(now):
            raise Violation(ENHANCE_YOUR_CALM, "too many stream resets (rapid reset)")
        return 9 + length
