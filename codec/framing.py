"""gRPC length-prefixed messages: ``flag (1 byte) | length (4 bytes, big-endian) | message``.

HTTP/2 DATA frames do not line up with messages: one frame may hold several messages, or a piece
of one, or a piece of a prefix. :class:`MessageDecoder` is the incremental, sans-I/O parser for
that byte stream; it checks the declared length against the receive limit from the prefix alone,
before buffering any of the body (grpc-go ``recvMsg`` does the same).
"""

from __future__ import annotations

import struct
from typing import Optional, Union

from .errors import CodecError, MessageTooLargeError, TruncatedMessageError

__all__ = ["DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH", "MessageDecoder", "encode_message"]

#: grpcio's default receive limit.
DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024

_PREFIX = struct.Struct(">BI")
_PREFIX_SIZE = 5
_MAX_LENGTH = 0xFFFFFFFF  # what 4 length bytes can say: the limit when there is none
_pack = _PREFIX.pack
_unpack_from = _PREFIX.unpack_from


def encode_message(payload: bytes, compressed: bool = False) -> bytes:
    """Prefix ``payload`` with its flag and length; the payload is copied once, into the result."""
    length = len(payload)
    if length > _MAX_LENGTH:
        raise ValueError(f"message of {length} bytes exceeds the gRPC maximum of 2**32-1 bytes")
    return _pack(1 if compressed else 0, length) + payload


class MessageDecoder:
    """Incremental decoder of the length-prefixed messages of one stream direction.

    ``feed()`` each DATA chunk and get the messages it completes; call ``finish()`` at end of
    stream. ``max_message_length`` may be changed between feeds; ``None`` (or a negative value,
    grpcio's -1) means no limit. After a CodecError the stream is broken: stop feeding.
    """

    __slots__ = (
        "_compressed",
        "_head",
        "_held",
        "_in_body",
        "_parts",
        "_remaining",
        "max_message_length",
    )

    def __init__(
        self, max_message_length: Optional[int] = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
    ) -> None:
        self.max_message_length = max_message_length
        self._head = b""  # the first 0-4 bytes of a prefix, when a chunk ended inside one
        self._in_body = False  # a prefix was read and its body is incomplete
        self._compressed = False  # flag of that body
        self._parts: list[Union[bytes, memoryview]] = []  # pieces of that body, joined once
        self._held = 0  # bytes in _parts
        self._remaining = 0  # bytes of that body not received yet

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (prefix or body)."""
        return len(self._head) + self._held

    def _limit(self) -> int:
        limit = self.max_message_length
        return _MAX_LENGTH if limit is None or limit < 0 else limit

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> list[tuple[bool, bytes]]:
        """Consume a chunk; return the messages it completes as ``(compressed, payload)``.

        Raises MessageTooLargeError as soon as a prefix declares a message above the limit and
        CodecError for a flag byte other than 0 or 1.
        """
        # Pieces are kept as views across calls: they must not see the caller reuse a buffer.
        chunk = data if type(data) is bytes else bytes(data)
        out: list[tuple[bool, bytes]] = []
        n = len(chunk)
        pos = 0
        if self._in_body:
            remaining = self._remaining
            if n < remaining:
                if n:
                    self._parts.append(chunk)
                    self._held += n
                    self._remaining = remaining - n
                return out
            parts = self._parts
            parts.append(chunk if n == remaining else memoryview(chunk)[:remaining])
            out.append((self._compressed, b"".join(parts)))
            self._parts = []
            self._held = 0
            self._in_body = False
            pos = remaining
        elif self._head:
            old = self._head
            head = old + chunk[: _PREFIX_SIZE - len(old)]
            if len(head) < _PREFIX_SIZE:
                self._head = head
                return out
            self._head = b""
            pos = _PREFIX_SIZE - len(old)
            flag, length = _unpack_from(head)
            self._check(flag, length, self._limit())
            end = pos + length
            if end > n:
                self._start_body(chunk, pos, n, flag, end)
                return out
            out.append((flag == 1, chunk[pos:end]))
            pos = end

        # Whole messages straight out of this chunk: one slice (copy) per payload, no buffer.
        limit = self._limit()
        while True:
            avail = n - pos
            if avail < _PREFIX_SIZE:
                if avail:
                    self._head = chunk[pos:]
                return out
            flag, length = _unpack_from(chunk, pos)
            if flag > 1 or length > limit:
                self._check(flag, length, limit)
            start = pos + _PREFIX_SIZE
            end = start + length
            if end > n:
                self._start_body(chunk, start, n, flag, end)
                return out
            out.append((flag == 1, chunk[start:end]))
            pos = end

    def _start_body(self, data: bytes, start: int, n: int, flag: int, end: int) -> None:
        """Keep the first piece of a body that continues in later chunks."""
        self._parts = [memoryview(data)[start:]] if start < n else []
        self._held = n - start
        self._remaining = end - n
        self._compressed = flag == 1
        self._in_body = True

    @staticmethod
    def _check(flag: int, length: int, limit: int) -> None:
        if flag > 1:
            raise CodecError(f"invalid message compression flag: {flag}")
        if length > limit:
            raise MessageTooLargeError(length, limit)

    def finish(self) -> None:
        """Check the stream ended on a message boundary; TruncatedMessageError if not."""
        if self._in_body:
            total = self._held + self._remaining
            raise TruncatedMessageError(
                f"stream ended inside a message: received {self._held} of {total} bytes"
            )
        if self._head:
            raise TruncatedMessageError(
                f"stream ended inside a message prefix: received {len(self._head)} of 5 bytes"
            )
