"""What the interop server and client share: service descriptors, metadata keys, flag parsing."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

import rpc
from rpc.interop.proto import messages_pb2, test_pb2

TEST_SERVICE = test_pb2.DESCRIPTOR.services_by_name["TestService"]
UNIMPLEMENTED_SERVICE = test_pb2.DESCRIPTOR.services_by_name["UnimplementedService"]

#: Request metadata the server echoes: this one in its initial metadata...
ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
#: ...and this one (binary) in its trailers.
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"

#: The compression the server applies when a request asks for compressed responses, and the one
#: the client uses for the compressed-request cases.
COMPRESSION = "gzip"

_TRUE = ("true", "t", "yes", "y", "1", "on")
_FALSE = ("false", "f", "no", "n", "0", "off")


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """A boolean flag in the reference clients' forms: ``--flag``, ``--flag=true|false``."""
    parser.add_argument(
        name, nargs="?", const=True, default=False, type=parse_bool, metavar="BOOL", help=help
    )


def host_port(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def zeros_payload(size: int) -> Any:
    """A COMPRESSABLE payload of ``size`` zero bytes."""
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def status_code(value: int) -> rpc.StatusCode:
    """The status code numbered ``value``; UNKNOWN for a number gRPC does not define."""
    try:
        return rpc.StatusCode(value)
    except ValueError:
        return rpc.StatusCode.UNKNOWN


def fail(code: rpc.StatusCode, details: str) -> NoReturn:
    raise rpc.RpcError(code, details)
