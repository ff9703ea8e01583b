"""The lingering close: how long, and how much, a connection ended for cause still reads.

A connection we end with GOAWAY is half-closed and drained for a moment instead of closed at
once: closing a socket with unread input makes the kernel send RST, which can destroy the GOAWAY
before the peer reads it. What arrives meanwhile is discarded unread. The drain is bounded by
time and by bytes: a peer that keeps sending at full speed after the GOAWAY (the conformance run
pushed 15 MiB into each of 16 such connections within the second) is cut off after
``LINGER_BYTES``, not served a free discard sink for the whole ``LINGER_SECONDS``.
"""

from __future__ import annotations

__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "Linger"]

#: How long a closing connection keeps reading (and discarding) after its final GOAWAY.
LINGER_SECONDS = 1.0
#: ... and at most this many bytes: then it is closed at once.
LINGER_BYTES = 256 * 1024


class Linger:
    """The drain of one closing connection; the driver feeds it what it discards."""

    __slots__ = ("deadline", "left")

    def __init__(self, now: float) -> None:
        self.deadline = now + LINGER_SECONDS
        self.left = LINGER_BYTES

    def discard(self, nbytes: int, now: float) -> bool:
        """``nbytes`` arrived and were dropped: False once the drain must stop (time or bytes
        used up), and the socket be closed."""
        self.left -= nbytes
        return self.left >= 0 and now < self.deadline
