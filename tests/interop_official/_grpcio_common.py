"""What the grpcio interop peers share: flags, and seeing whether a received message was compressed.

grpcio's Python API hides a message's compressed flag, and its server does not even show the
request's ``grpc-encoding``. Both peers therefore run with grpcio's channel argument
``grpc.per_message_decompression`` set to 0: gRPC core then hands compressed messages to the
application as they arrived (gzip or zlib data) instead of inflating them, and our deserializers
recognise and inflate them. A protobuf message never starts like either format (0x1f or 0x78 would
be fields 3 and 15 with wire types 7 and 0: the first does not exist, and no message of these
services has a field 15), so the first bytes tell the flag for certain.
"""

from __future__ import annotations

import argparse
import zlib
from typing import Any, Callable, NamedTuple

#: Channel / server option that makes gRPC core deliver compressed messages as they arrived.
KEEP_COMPRESSED_OPTION = ("grpc.per_message_decompression", 0)


class Received(NamedTuple):
    """A received message, whether it arrived compressed, and its size on the wire."""

    message: Any
    compressed: bool
    wire_size: int


def _inflate(data: bytes) -> tuple[bytes, bool]:
    if data[:2] == b"\x1f\x8b":  # gzip
        return zlib.decompress(data, 16 + zlib.MAX_WBITS), True
    if len(data) >= 2 and data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0:  # zlib
        return zlib.decompress(data), True
    return data, False


def receiving(message_class: Any) -> Callable[[bytes], Received]:
    """A deserializer giving :class:`Received` instead of the bare message."""

    def deserialize(data: bytes) -> Received:
        body, compressed = _inflate(data)
        return Received(message_class.FromString(body), compressed, len(data))

    return deserialize


def serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "t", "yes", "y", "1", "on"):
        return True
    if value in ("false", "f", "no", "n", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    parser.add_argument(
        name, nargs="?", const=True, default=False, type=parse_bool, metavar="BOOL", help=help
    )


def host_port(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"
