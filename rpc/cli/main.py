"""The ``h2rpc`` command line (also ``python -m rpc``): argument parsing and exit statuses.

::

    h2rpc list TARGET [SERVICE]
    h2rpc describe TARGET [SYMBOL]
    h2rpc call TARGET pkg.Service/Method [-d JSON | -d @FILE | -d @-]
    h2rpc health TARGET [SERVICE] [--watch]

The exit status is the gRPC status code of the call that failed (0: OK); a usage error (a bad
flag, bad request JSON, a schema that does not load) is 1.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ssl
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, Optional

import rpc
from rpc._trace import diagram_output

from . import commands
from .commands import Connection, Output, UsageError
from .jsonio import RequestError
from .schema import FileSchema, SchemaError

__all__ = ["build_parser", "main"]

USAGE_ERROR = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (argparse's 2 is a status code: UNKNOWN)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _common_flags() -> _Parser:
    common = _Parser(add_help=False)
    connection = common.add_argument_group("connection")
    connection.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'KEY: VALUE'",
        help="metadata to send with every call (repeatable; -bin keys take base64 values)",
    )
    connection.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="deadline of the whole command"
    )
    connection.add_argument("--tls", action="store_true", help="connect over TLS")
    connection.add_argument("--cacert", metavar="FILE", help="CA certificates (PEM; implies --tls)")
    connection.add_argument("--cert", metavar="FILE", help="client certificate (PEM; mTLS)")
    connection.add_argument("--key", metavar="FILE", help="client private key (PEM; mTLS)")
    connection.add_argument(
        "--insecure", action="store_true", help="TLS without verifying the server's certificate"
    )
    connection.add_argument(
        "--authority",
        metavar="NAME",
        help=":authority of the calls (and, over TLS, the name the certificate must have)",
    )
    connection.add_argument(
        "--servername", metavar="NAME", help="the TLS server name to verify (SNI)"
    )
    connection.add_argument(
        "--compression", choices=("gzip", "deflate", "identity"), help="compress requests"
    )
    connection.add_argument(
        "--trace",
        nargs="?",
        const="all",
        metavar="KINDS",
        help="study mode: the decoded wire on stderr (frames,headers,messages; default all; json)",
    )
    connection.add_argument("--trace-html", metavar="FILE", help=diagram_output.HELP)
    connection.add_argument(
        "--pcap",
        metavar="FILE",
        help="write the studied connection to FILE as pcapng, for Wireshark (plaintext HTTP/2)",
    )
    schema = common.add_argument_group("schema (default: server reflection)")
    schema.add_argument(
        "--proto",
        action="append",
        default=[],
        metavar="FILE",
        help=".proto file to take the schema from (repeatable; needs grpcio-tools or protoc)",
    )
    schema.add_argument(
        "-I",
        "--import-path",
        action="append",
        default=[],
        metavar="DIR",
        help="where --proto files and their imports are (repeatable)",
    )
    schema.add_argument(
        "--protoset",
        action="append",
        default=[],
        metavar="FILE",
        help="FileDescriptorSet to take the schema from (protoc --include_imports "
        "--descriptor_set_out; repeatable)",
    )
    out = common.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("json", "text"),
        help="messages as JSON lines (the default) or protobuf text; describe: .proto syntax "
        "(the default) or the descriptor as JSON",
    )
    out.add_argument(
        "--emit-defaults", action="store_true", help="JSON: also fields at their default value"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_flags()
    parser = _Parser(
        prog="h2rpc",
        description="Talk to gRPC servers: list and describe their services (server reflection "
        "or .proto files), call their methods with JSON, check their health.",
        epilog="Exit status: 0, or the gRPC status code of the failed call; 1 for usage errors.",
    )
    parser.add_argument("--version", action="version", version=f"h2rpc {rpc.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    listing = sub.add_parser(
        "list",
        parents=[common],
        help="the server's services, or a service's methods",
        description="The services (sorted), or with SERVICE that service's methods. With "
        "--proto/--protoset, TARGET may be left out.",
    )
    listing.add_argument("arguments", nargs="*", metavar="TARGET [SERVICE]")
    describing = sub.add_parser(
        "describe",
        parents=[common],
        help="a service, method, message, enum or field, in .proto syntax",
        description="SYMBOL (a fully-qualified name) in .proto syntax, as grpcurl shows it; "
        "every service without one. --format json: its descriptor as JSON.",
    )
    describing.add_argument("arguments", nargs="*", metavar="TARGET [SYMBOL]")
    calling = sub.add_parser(
        "call",
        parents=[common],
        help="call a method with JSON requests, print the responses as JSON lines",
        description="Call METHOD (pkg.Service/Method) with the requests of -d: a JSON object, "
        "or several (JSON lines) for a client stream; @FILE reads them from a file, @- from "
        "standard input (as they come: bidi calls answer each line). Without -d: one empty "
        "request (none for a client stream). Each response is printed as it arrives.",
    )
    calling.add_argument("target", metavar="TARGET", help="host:port, [::1]:port or unix:PATH")
    calling.add_argument("method", metavar="METHOD", help="pkg.Service/Method")
    calling.add_argument("-d", "--data", metavar="JSON|@FILE|@-", help="the request(s)")
    checking = sub.add_parser(
        "health",
        parents=[common],
        help="grpc.health.v1 Check (or Watch) of a service, or of the server",
        description="The serving status of SERVICE (of the server as a whole without one). "
        "Exit status 0 when SERVING, 14 (UNAVAILABLE) otherwise, or the failed call's code.",
    )
    checking.add_argument("target", metavar="TARGET")
    checking.add_argument("service", metavar="SERVICE", nargs="?")
    checking.add_argument(
        "--watch", action="store_true", help="print each change until the stream ends"
    )
    return parser


def _metadata(headers: Sequence[str]) -> list[tuple[str, Any]]:
    metadata: list[tuple[str, Any]] = []
    for header in headers:
        key, colon, value = header.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not colon or not key:
            raise UsageError(f"-H {header!r}: metadata is 'key: value'")
        if key.endswith("-bin"):
            try:
                metadata.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                metadata.append((key, value.encode("utf-8")))
        else:
            metadata.append((key, value))
    return metadata


def _channel_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    use_tls = args.tls or args.cacert or args.cert or args.key or args.insecure
    if use_tls:
        try:
            context = rpc.ssl_channel_context(
                args.cacert, private_key=args.key, certificate_chain=args.cert
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UsageError(f"TLS: {exc}") from None
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        options["ssl_context"] = context
    if args.authority:
        options["authority"] = args.authority
    server_name = args.servername or (args.authority and _host_of(args.authority))
    if server_name and use_tls:
        options["server_hostname"] = server_name
    if args.compression:
        options["compression"] = args.compression
    return options


def _host_of(authority: str) -> str:
    if authority.startswith("["):
        return authority[1 : authority.find("]")]
    host, _, port = authority.rpartition(":")
    return host if host and port.isdigit() else authority


def _split_target(args: argparse.Namespace, offline: bool) -> tuple[Optional[str], Optional[str]]:
    """``list``/``describe``: TARGET and the optional SERVICE/SYMBOL (TARGET may be left out
    with an offline schema; a symbol has no ``:`` or ``/``, a target does)."""
    arguments = args.arguments
    if len(arguments) > 2:
        raise UsageError(f"too many arguments: {' '.join(arguments)}")
    if len(arguments) == 2:
        return arguments[0], arguments[1]
    if len(arguments) == 1:
        if offline and not any(c in arguments[0] for c in ":/"):
            return None, arguments[0]
        return arguments[0], None
    if offline:
        return None, None
    raise UsageError(f"{args.command} needs a TARGET (host:port), or --proto/--protoset")


def run(args: argparse.Namespace, output: Output) -> int:
    pcap = None
    if args.pcap:
        try:
            pcap = rpc.PcapWriter(args.pcap)
        except OSError as exc:
            raise UsageError(f"--pcap {args.pcap}: {exc.strerror or exc}") from None
    try:
        with diagram_output.tracing(args.trace, args.trace_html, output.stderr) as tracer:
            return _run(args, output, tracer, pcap)
    finally:
        if pcap is not None:
            pcap.close()


def _run(
    args: argparse.Namespace,
    output: Output,
    tracer: Optional[rpc.Tracer],
    pcap: Optional[rpc.PcapWriter],
) -> int:
    offline: Optional[FileSchema] = None
    if args.proto or args.protoset:
        offline = FileSchema(args.protoset, args.proto, args.import_path)
    if args.command in ("list", "describe"):
        target, symbol = _split_target(args, offline is not None)
    else:
        target, symbol = args.target, None
    connection = None
    if target is not None:
        connection = Connection(
            target,
            _channel_options(args),
            _metadata(args.header),
            args.timeout,
            tracer,
            pcap=pcap,
        )
    if args.command == "health":
        assert connection is not None
        return commands.health(connection, args.service, args.watch, output)
    schema_channel = None
    if offline is None:
        assert connection is not None
        # list/describe: reflection is what is studied (traced); call: only the call is.
        schema_channel = connection.channel(traced=args.command != "call")
    try:
        with commands.open_schema(connection, offline, schema_channel) as schema:
            if args.command == "list":
                return commands.list_command(schema, symbol, output)
            if args.command == "describe":
                return commands.describe_command(schema, symbol, output)
            assert connection is not None
            return commands.call(connection, schema, args.method, args.data, output)
    finally:
        if schema_channel is not None:
            schema_channel.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    format = args.format or ("text" if args.command == "describe" else "json")
    output = Output(format=format, emit_defaults=args.emit_defaults)
    try:
        return run(args, output)
    except rpc.RpcError as exc:
        output.error(exc)
        return exc.code().value
    except SchemaError as exc:
        if exc.code is not None:
            output.error(rpc.RpcError(exc.code, str(exc)))
            return exc.code.value
        print(f"h2rpc: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (UsageError, RequestError, rpc.UsageError) as exc:
        print(f"h2rpc: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except ValueError as exc:  # an option the channel rejects (a malformed target...)
        print(f"h2rpc: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return rpc.StatusCode.CANCELLED.value
    except BrokenPipeError:  # `h2rpc call ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
