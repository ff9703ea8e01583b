"""The guard's in-loop check of DATA and whole HEADERS frames judges as its per-frame check does."""

from __future__ import annotations

import struct
from typing import Optional

import pytest

from codec.http2_errors import ENHANCE_YOUR_CALM, FRAME_SIZE_ERROR
from transport import ConnectionOptions
from transport.guard import FrameGuard, Violation

_DATA, _HEADERS, _CONTINUATION = 0x0, 0x1, 0x9
_END_HEADERS = 0x4


def frame(kind: int, flags: int, length: int, stream_id: int = 1) -> bytes:
    return struct.pack(">IBI", length << 8 | kind, flags, stream_id) + b"\0" * length


def judge(wire: bytes, chunk: Optional[int]) -> tuple[Optional[int], int, bool]:
    """Feed ``wire`` in one read (the in-loop path) or in reads of ``chunk`` bytes (a frame
    header completed from an earlier read goes through the per-frame check)."""
    options = ConnectionOptions(max_header_block_size=1000, max_frame_size=16384)
    guard = FrameGuard(options, server_side=False)
    try:
        if chunk is None:
            guard.feed(wire, now=0.0)
        else:
            for at in range(0, len(wire), chunk):
                guard.feed(wire[at : at + chunk], now=0.0)
    except Violation as exc:
        return exc.error_code, guard._block, guard._in_block
    return None, guard._block, guard._in_block


CASES = {
    "data and whole blocks": frame(_HEADERS, _END_HEADERS, 300)
    + frame(_DATA, 0, 16384)
    + frame(_HEADERS, _END_HEADERS | 0x1, 20),
    "whole block above the limit": frame(_HEADERS, _END_HEADERS, 1001),
    "data above the frame size": frame(_DATA, 0, 16385),
    "headers above the frame size": frame(_HEADERS, _END_HEADERS, 16385),
    "continued block above the limit": frame(_HEADERS, 0, 600) + frame(_CONTINUATION, 0, 600),
    "continued block then a whole one": frame(_HEADERS, 0, 600)
    + frame(_CONTINUATION, _END_HEADERS, 10)
    + frame(_HEADERS, _END_HEADERS, 900),
    "unfinished block": frame(_DATA, 0, 10) + frame(_HEADERS, 0, 500),
}
EXPECTED = {
    "data and whole blocks": None,
    "whole block above the limit": ENHANCE_YOUR_CALM,
    "data above the frame size": FRAME_SIZE_ERROR,
    "headers above the frame size": FRAME_SIZE_ERROR,
    "continued block above the limit": ENHANCE_YOUR_CALM,
    "continued block then a whole one": None,
    "unfinished block": None,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_read_and_split_reads_judge_alike(name: str) -> None:
    whole = judge(CASES[name], None)
    assert whole[0] == EXPECTED[name]
    for chunk in (1, 7, 9, 10):
        assert judge(CASES[name], chunk) == whole
