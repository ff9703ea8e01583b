"""Frames that arrive on a stream we reset are ignored for a while (RFC 9113 §5.1, §5.4.2).

When we send RST_STREAM (a server that answered early, HTTP 415 then RST_STREAM(NO_ERROR); a
refused stream; a cancelled call), the peer may already have sent more frames on the stream, or
queued them, before it reads our reset. RFC 9113 §5.1 says an endpoint "MUST ignore frames that
it receives on closed streams after it has sent a RST_STREAM frame", and "MAY choose to limit
the period over which it ignores frames and treat frames that arrive after this time as being
in error". h2 answers every such frame with RST_STREAM(STREAM_CLOSED) instead.

``IgnoringResetStreams`` is h2's connection with that one answer changed: a frame on a stream
closed by our RST_STREAM is processed minimally (HPACK state is kept in step, received DATA still
gives the connection window back) and dropped without a reply, within a bounded grace:
``RESET_GRACE_SECONDS`` from the first such frame, at most ``RESET_GRACE_BYTES`` of them per
stream (what a peer can have had in flight is one stream window), for at most
``RESET_GRACE_STREAMS`` streams at once. Past that, h2's answer (RST_STREAM(STREAM_CLOSED))
stands, so a peer cannot keep a reset stream alive as a discard sink.
"""

from __future__ import annotations

from typing import Any, Callable

import h2.config
import h2.exceptions
from h2.stream import StreamClosedBy
from hyperframe.frame import DataFrame, RstStreamFrame

from .open_streams import CountedOpenStreams

__all__ = [
    "RESET_GRACE_BYTES",
    "RESET_GRACE_SECONDS",
    "RESET_GRACE_STREAMS",
    "IgnoringResetStreams",
]

#: Frames on a stream we reset are ignored this long, counted from the first one that arrives
#: (the frames a peer had in flight arrive within a round trip of each other).
RESET_GRACE_SECONDS = 10.0
#: ... up to this many bytes of frames (headers and payload) per stream, beyond one full stream
#: window of ours (the most DATA the peer may have had in flight).
RESET_GRACE_BYTES = 64 * 1024
#: At most this many streams are in their grace at once (the oldest grace ends first).
RESET_GRACE_STREAMS = 1024

_Handler = Callable[[Any], "tuple[list[Any], list[Any]]"]


class IgnoringResetStreams(CountedOpenStreams):
    """``H2Connection`` that ignores frames on a stream it reset, within a bounded grace."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config)
        #: The time of the bytes being received, set by the core before it feeds them.
        self.now = 0.0
        # stream id -> [end of its grace, bytes it may still ignore]
        self._grace: dict[int, list[float]] = {}
        table = self._frame_dispatch_table
        for frame_class, handler in list(table.items()):
            # DATA, the hot path, is left as it is: h2 handles it on a closed stream itself,
            # in ``_handle_data_on_closed_stream`` (below).
            if frame_class is not DataFrame:
                table[frame_class] = self._ignoring_reset_streams(handler)

    def _ignoring_reset_streams(self, handler: _Handler) -> _Handler:
        """``handler`` with frames on a stream we reset dropped instead of answered (h2 raises
        StreamClosedError, or StreamIDTooLowError once it has forgotten the stream)."""

        def receive(frame: Any) -> tuple[list[Any], list[Any]]:
            try:
                return handler(frame)
            except (h2.exceptions.StreamClosedError, h2.exceptions.StreamIDTooLowError) as exc:
                if not self._in_grace(exc.stream_id, 9 + len(getattr(frame, "data", b""))):
                    raise
                return [], list(getattr(exc, "_events", ()))

        return receive

    def _handle_data_on_closed_stream(
        self, events: list[Any], exc: h2.exceptions.StreamClosedError, frame: Any
    ) -> tuple[list[Any], list[Any]]:
        # h2 gives the connection window back (good: the bytes count against it) and adds a
        # RST_STREAM(STREAM_CLOSED) (not during the grace).
        frames, events = super()._handle_data_on_closed_stream(events, exc, frame)
        if self._in_grace(exc.stream_id, 9 + frame.flow_controlled_length):
            frames = [f for f in frames if not isinstance(f, RstStreamFrame)]
        return frames, events

    def _in_grace(self, stream_id: int, size: int) -> bool:
        """A frame of ``size`` bytes on a closed stream: True if it is to be ignored."""
        if self._stream_closed_by(stream_id) is not StreamClosedBy.SEND_RST_STREAM:
            return False
        grace = self._grace.get(stream_id)
        if grace is None:
            if len(self._grace) >= RESET_GRACE_STREAMS:
                del self._grace[next(iter(self._grace))]
            budget = self.local_settings.initial_window_size + RESET_GRACE_BYTES
            grace = self._grace[stream_id] = [self.now + RESET_GRACE_SECONDS, float(budget)]
        grace[1] -= size
        return self.now <= grace[0] and grace[1] >= 0
