"""Outgoing HEADERS and DATA frames written here; h2's state machines still decide.

For each frame h2 sends it makes a hyperframe object (with a set-based ``Flags``), passes the
header list through helpers that only matter with its outbound validation on (ours is off: the
codec builds header lists from validated parts), serializes the frame into a new ``bytes``
(a DATA payload is copied twice on the way) and joins the frames of the call. A unary call
sends three or four such frames per side, and a stream one per message.

These two functions make the very calls h2 makes on its connection and stream state machines
and flow-control windows, in h2's order, so h2's state (and its errors) are exactly what
``H2Connection.send_headers`` / ``send_data`` would leave; only the frame bytes are written
here: the 9-byte header packed once, the payload appended as it is. Anything unusual (a header
block that needs CONTINUATION frames, informational responses) is left to h2 by returning
False.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Union

import h2.connection
import h2.exceptions
from h2.connection import AllowedStreamIDs, ConnectionInputs
from h2.stream import H2Stream, StreamInputs
from h2.utilities import authority_from_headers, extract_method_header, is_informational_response

__all__ = ["send_data_frame", "send_headers_frame"]

_pack_head = struct.Struct(">IBI").pack  # length (24 bits) + type, flags, stream id
_HEADERS = 0x1
_END_STREAM, _END_HEADERS = 0x1, 0x4

_SEND_HEADERS_CONN = ConnectionInputs.SEND_HEADERS
_SEND_DATA_CONN = ConnectionInputs.SEND_DATA
_SEND_HEADERS = StreamInputs.SEND_HEADERS
_SEND_DATA = StreamInputs.SEND_DATA
_SEND_END_STREAM = StreamInputs.SEND_END_STREAM


def send_headers_frame(
    conn: h2.connection.H2Connection,
    stream_id: int,
    headers: Sequence[tuple[bytes, bytes]],
    block: bytes,
    end_stream: bool,
) -> bool:
    """Queue ``block`` (the encoded ``headers``) as one HEADERS frame, as h2 would.

    Only for connections with h2's outbound header validation and normalisation off. Returns
    False, having done nothing, when h2 must send it itself.
    """
    if len(block) > conn.max_outbound_frame_size:
        return False  # CONTINUATION frames: h2 splits the block
    client_side = conn.config.client_side
    if not client_side and is_informational_response(headers):
        return False
    stream = conn.streams.get(stream_id)
    if stream is None:
        limit = conn.remote_settings.max_concurrent_streams
        open_now = conn.open_outbound_streams
        if open_now + 1 > limit:
            raise h2.exceptions.TooManyStreamsError(
                f"Max outbound streams is {limit}, {open_now} open"
            )
    conn.state_machine.process_input(_SEND_HEADERS_CONN)
    if stream is None:
        stream = conn._get_or_create_stream(stream_id, AllowedStreamIDs(client_side))
    machine = stream.state_machine
    machine.process_input(_SEND_HEADERS)
    if end_stream:
        machine.process_input(_SEND_END_STREAM)
    if machine.trailers_sent and not end_stream:
        raise h2.exceptions.ProtocolError("Trailers must have END_STREAM set.")
    if machine.client and stream._authority is None:
        stream._authority = authority_from_headers(headers)
    stream.request_method = extract_method_header(headers)
    flags = _END_HEADERS | _END_STREAM if end_stream else _END_HEADERS
    conn._data_to_send += _pack_head(len(block) << 8 | _HEADERS, flags, stream_id) + block
    return True


def send_data_frame(
    conn: h2.connection.H2Connection,
    stream: H2Stream,
    stream_id: int,
    data: Union[bytes, memoryview],
    end_stream: bool,
) -> None:
    """Queue one DATA frame on ``stream`` (h2's ``H2Stream`` for ``stream_id``), as h2 would.

    The caller has checked that ``data`` fits the flow-control windows and the peer's frame
    size, as ``H2Connection.send_data`` checks before it changes anything.
    """
    conn.state_machine.process_input(_SEND_DATA_CONN)
    machine = stream.state_machine
    machine.process_input(_SEND_DATA)
    if end_stream:
        machine.process_input(_SEND_END_STREAM)
    size = len(data)
    stream.outbound_flow_control_window -= size
    conn.outbound_flow_control_window -= size
    out = conn._data_to_send
    out += _pack_head(size << 8, _END_STREAM if end_stream else 0, stream_id)
    out += data
