"""The frame guard reads views of a reused read buffer (the asyncio driver's) and keeps none."""

from __future__ import annotations

import pytest
from hyperframe.frame import DataFrame, PingFrame, SettingsFrame

from transport import ConnectionOptions
from transport.guard import FrameGuard, Violation

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frames(pings: int) -> bytes:
    data = DataFrame(1)
    data.data = b"x" * 100
    out = PREFACE + SettingsFrame(0).serialize() + data.serialize()
    for i in range(pings):
        out += PingFrame(0, opaque_data=b"%08d" % i).serialize()
    return out


@pytest.mark.parametrize("chunk", [1, 5, 9, 10, 64])
def test_frame_headers_split_across_reads_of_one_reused_buffer(chunk: int) -> None:
    """Each read overwrites the buffer; a header split across reads must have been copied."""
    options = ConnectionOptions(ping_flood_limit=(0.001, 3))
    guard = FrameGuard(options, server_side=True)
    wire = frames(pings=4)  # the fourth PING crosses the limit of 3
    buffer = bytearray(64)
    view = memoryview(buffer)
    with pytest.raises(Violation, match="ping flood"):
        for at in range(0, len(wire), chunk):
            piece = wire[at : at + chunk]
            buffer[: len(piece)] = piece
            guard.feed(view[: len(piece)], now=0.0)
            buffer[:] = b"\xff" * len(buffer)  # the driver's next read scribbles over it
    assert at + chunk >= len(wire) - 17  # caught at the last PING, not earlier on garbage
