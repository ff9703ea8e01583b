"""Wire taps: what sees a connection's bytes in and out (the tracer, a packet capture).

``ConnectionCore`` holds at most one tap (``None`` when nothing watches: one ``is not None``
test per socket read or write is the whole cost). ``ConnectionOptions.tracer`` (decoding, see
``trace.py``) and ``ConnectionOptions.capture`` (recording, e.g. ``rpc``'s pcapng writer) each
make one tap per connection; when both are on, ``Tee`` feeds both. The bytes are HTTP/2's: under
TLS, what was decrypted and what is about to be encrypted.

The driver tells the core about the socket (``socket_opened`` with the local and peer socket
addresses, ``socket_closed``), which the core passes on: a capture needs the addresses for its
packets, and the end of the connection for its FIN.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

__all__ = ["Tee", "WireTap", "WireTapMaker", "open_tap"]


class WireTap(Protocol):
    """One connection's tap. Its methods must never raise into the connection."""

    def bytes_in(self, data: Any) -> None:
        """Bytes read (a view valid only during the call: copy what is kept)."""

    def bytes_out(self, data: Any) -> None:
        """Bytes about to be written."""

    def socket_opened(self, local: object, peer: object) -> None:
        """The socket's own and its peer's address (``getsockname()`` / ``getpeername()``
        forms; not a tuple for a Unix socket or when unknown), before any byte."""

    def socket_closed(self) -> None:
        """The connection is over: no more bytes."""


class WireTapMaker(Protocol):
    """What ``ConnectionOptions.tracer`` and ``.capture`` must be: a maker of one tap per
    connection."""

    def open_connection(self, *, client_side: bool) -> WireTap: ...


class Tee:
    """Feeds several taps, in order."""

    __slots__ = ("taps",)

    def __init__(self, taps: list[WireTap]) -> None:
        self.taps = taps

    def bytes_in(self, data: Any) -> None:
        for tap in self.taps:
            tap.bytes_in(data)

    def bytes_out(self, data: Any) -> None:
        for tap in self.taps:
            tap.bytes_out(data)

    def socket_opened(self, local: object, peer: object) -> None:
        for tap in self.taps:
            tap.socket_opened(local, peer)

    def socket_closed(self) -> None:
        for tap in self.taps:
            tap.socket_closed()


def open_tap(makers: list[Optional[WireTapMaker]], *, client_side: bool) -> Optional[WireTap]:
    """The tap of a new connection: None when no maker is given, else one tap, or a ``Tee``."""
    taps = [m.open_connection(client_side=client_side) for m in makers if m is not None]
    if not taps:
        return None
    return taps[0] if len(taps) == 1 else Tee(taps)
