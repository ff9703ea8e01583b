"""A raw HTTP/2 attacker: writes exactly the frames a test asks for, on a blocking socket.

Written here with hyperframe (h2's frame layer) and hpack, so it can send what no well-behaved
client would: floods, resets, oversized and malformed frames. Every read is bounded by a
deadline; the socket is closed by ``close()`` (or the context manager).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Optional

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from codec.http2_errors import CANCEL

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

GRPC_HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/h2rpc.test.EchoTest/Unary"),
    (":authority", "localhost"),
    ("te", "trailers"),
    ("content-type", "application/grpc"),
]


def grpc_headers(path: str = "/h2rpc.test.EchoTest/Unary", **extra: str) -> list[tuple[str, str]]:
    headers = [(k, path if k == ":path" else v) for k, v in GRPC_HEADERS]
    return headers + list(extra.items())


def message(payload: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


@dataclass
class Seen:
    """What the server sent back."""

    goaway: Optional[GoAwayFrame] = None
    closed: bool = False


class Attacker:
    def __init__(self, port: int, *, timeout: float = 10.0, handshake: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.encoder = hpack.Encoder()
        self.deadline = time.monotonic() + timeout
        self.frames: list[Frame] = []
        self.seen = Seen()
        self._buffer = b""
        if handshake:
            self.send(PREFACE + SettingsFrame(0).serialize())

    def __enter__(self) -> Attacker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # ------------------------------------------------------------------ building frames

    def headers(
        self,
        stream_id: int,
        headers: Optional[list[tuple[str, str]]] = None,
        *,
        end_stream: bool = False,
        end_headers: bool = True,
        block: Optional[bytes] = None,
    ) -> bytes:
        frame = HeadersFrame(stream_id)
        frame.data = block if block is not None else self.encoder.encode(headers or GRPC_HEADERS)
        if end_headers:
            frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame.serialize()

    @staticmethod
    def continuation(stream_id: int, block: bytes, *, end_headers: bool = False) -> bytes:
        frame = ContinuationFrame(stream_id)
        frame.data = block
        if end_headers:
            frame.flags.add("END_HEADERS")
        return frame.serialize()

    @staticmethod
    def data(stream_id: int, payload: bytes, *, end_stream: bool = False) -> bytes:
        frame = DataFrame(stream_id)
        frame.data = payload
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame.serialize()

    @staticmethod
    def rst(stream_id: int, code: int = CANCEL) -> bytes:
        frame = RstStreamFrame(stream_id)
        frame.error_code = code
        return frame.serialize()

    @staticmethod
    def ping(payload: bytes = b"\0" * 8) -> bytes:
        frame = PingFrame(0)
        frame.opaque_data = payload
        return frame.serialize()

    @staticmethod
    def settings(**values: int) -> bytes:
        frame = SettingsFrame(0)
        for key, value in values.items():
            frame.settings[getattr(SettingsFrame, key)] = value
        return frame.serialize()

    @staticmethod
    def window_update(stream_id: int, increment: int) -> bytes:
        frame = WindowUpdateFrame(stream_id)
        frame.window_increment = increment
        return frame.serialize()

    @staticmethod
    def raw(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))[1:]
            + bytes([kind, flags])
            + struct.pack(">I", stream_id)
            + payload
        )

    # ------------------------------------------------------------------ the wire

    def send(self, data: bytes) -> bool:
        """Send; False if the server no longer takes data (what it sent can still be read)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def read(self, timeout: float = 0.0) -> list[Frame]:
        """Frames that arrived within ``timeout`` (0: only what is already there)."""
        end = min(self.deadline, time.monotonic() + timeout)
        new: list[Frame] = []
        while not self.seen.closed:
            left = end - time.monotonic()
            self.sock.settimeout(max(left, 0.0001))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                break
            except OSError:
                self.seen.closed = True
                break
            if not chunk:
                self.seen.closed = True
                break
            self._buffer += chunk
            new += self._parse()
            if time.monotonic() >= end:
                break
        self.frames += new
        return new

    def _parse(self) -> list[Frame]:
        out = []
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            if isinstance(frame, GoAwayFrame):
                self.seen.goaway = frame
            out.append(frame)
        return out

    def wait_for(
        self, predicate: type, timeout: float = 5.0, stream_id: Optional[int] = None
    ) -> Frame:
        """The first frame of type ``predicate`` (on ``stream_id``), waiting up to ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            for frame in self.frames:
                if isinstance(frame, predicate) and (
                    stream_id is None or frame.stream_id == stream_id
                ):
                    return frame
            if self.seen.closed or time.monotonic() > end:
                raise AssertionError(
                    f"no {predicate.__name__} within {timeout} s; got {self.frames[-10:]}"
                )
            self.read(0.05)

    def wait_closed(self, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while not self.seen.closed:
            assert time.monotonic() < end, "the server did not close the connection"
            self.read(0.05)
