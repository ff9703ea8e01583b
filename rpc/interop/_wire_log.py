"""How each received message looked on the wire: its compressed flag and its size there.

The interop cases need the flag on both sides (a server must reject an uncompressed request marked
``expect_compressed``; a client checks that responses asked to be compressed were, and that those
asked not to be were not), and h2rpc's public API does not expose it: messages reach handlers and
callers already decompressed. The size lets empty_unary check that the response was zero bytes.

THIS IS THE ONE PLACE ``rpc.interop`` REACHES INTO h2rpc INTERNALS. Client calls
(``rpc._core.client_call.ClientCallCore``) and server calls
(``rpc._core.server_call.ServerCallCore``, behind a handler's context) each hold the incremental
decoder of what they receive in a private ``_decoder`` attribute, a ``codec.MessageDecoder`` whose
``feed(chunk)`` returns the messages a chunk completes as ``(compressed, payload)`` pairs, in
order. :func:`watch` swaps in a wrapper that records them before passing the pairs on unchanged.
Should the library grow a public way to ask (e.g. ``call.last_message_compressed()`` /
``context.last_request_compressed()``), this module is what to replace; it fails loudly
(RuntimeError) rather than guess if those internals change.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple, Union

from .._core.server_call import ServerCallCore

_Chunk = Union[bytes, bytearray, memoryview]


class WireMessage(NamedTuple):
    """One received message as it arrived: compressed flag, and payload size on the wire."""

    compressed: bool
    wire_size: int


class WireLog:
    """The messages a call received, oldest first, one entry per message.

    Messages reach the application in the order they arrive, so the n-th :meth:`next` describes
    the n-th message the application was given.
    """

    def __init__(self) -> None:
        self._messages: deque[WireMessage] = deque()

    def record(self, frames: list[tuple[bool, bytes]]) -> None:
        self._messages.extend(WireMessage(bool(flag), len(body)) for flag, body in frames)

    def next(self) -> WireMessage:
        """The oldest message not described yet."""
        if not self._messages:
            raise RuntimeError("no received message left to describe")
        return self._messages.popleft()


class _RecordingDecoder:
    """Wraps a ``codec.MessageDecoder``: same behaviour, and every message goes to the log."""

    def __init__(self, decoder: Any, log: WireLog) -> None:
        object.__setattr__(self, "_decoder", decoder)
        object.__setattr__(self, "_log", log)

    def feed(self, data: _Chunk) -> list[tuple[bool, bytes]]:
        frames: list[tuple[bool, bytes]] = self._decoder.feed(data)
        self._log.record(frames)
        return frames

    def __getattr__(self, name: str) -> Any:  # finish(), buffered, max_message_length, ...
        return getattr(self._decoder, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._decoder, name, value)


def watch(call_or_context: object) -> WireLog:
    """Log every message ``call_or_context`` receives from now on.

    ``call_or_context`` is a client call object (before it is awaited, read or iterated) or a
    handler's ``ServicerContext`` (before the handler reads a request, so only for
    streaming-request methods: a unary handler gets its request already read).
    """
    # A server context drives a call core, which holds what the call received.
    core = getattr(call_or_context, "_call", None)
    if isinstance(core, ServerCallCore):
        call_or_context = core
    decoder = getattr(call_or_context, "_decoder", None)
    if decoder is None or not callable(getattr(decoder, "feed", None)):
        raise RuntimeError(
            f"cannot see the wire form of messages of {type(call_or_context).__name__}: h2rpc "
            "internals changed (no _decoder with feed()); update rpc/interop/_wire_log.py"
        )
    if isinstance(decoder, _RecordingDecoder):
        raise RuntimeError("this call's messages are already being logged")
    if getattr(decoder, "buffered", 0) or getattr(call_or_context, "_messages", None):
        raise RuntimeError("watch() must start before the first message is received")
    log = WireLog()
    # The reach into internals (see the module docstring).
    setattr(call_or_context, "_decoder", _RecordingDecoder(decoder, log))  # noqa: B010
    return log
