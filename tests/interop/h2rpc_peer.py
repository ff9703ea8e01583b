"""EchoTest server on h2rpc, run as a real process for interop tests.

Usage::

    python tests/interop/h2rpc_peer.py --port 0 [--host 127.0.0.1]

Same protocol as grpcio_peer.py: prints ``PORT <n>`` once serving, serves until SIGTERM, SIGINT or
EOF on stdin, then stops with a short grace period.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "protos"))
sys.path.insert(0, str(HERE))
from compile import ensure_proto_path  # noqa: E402

ensure_proto_path()
import echo_servicer  # noqa: E402
import echo_servicer_sync  # noqa: E402
from echo_servicer import make_server  # noqa: E402
from echo_servicer_sync import make_sync_server  # noqa: E402
from peer_options import CALL_BEGUN, add_server_options  # noqa: E402

import rpc  # noqa: E402

MAX_MESSAGE_LENGTH = 64 * 1024 * 1024
STOP_GRACE_SECONDS = 1.0
log = logging.getLogger("h2rpc_peer")


class LoggingServicer(echo_servicer.EchoTestServicer):
    """--log-calls: says on stderr when each Unary call begins (tests wait for it)."""

    async def Unary(self, request: Any, context: Any) -> Any:
        log.info(CALL_BEGUN)
        return await super().Unary(request, context)


class LoggingSyncServicer(echo_servicer_sync.EchoTestServicer):
    def Unary(self, request: Any, context: Any) -> Any:
        log.info(CALL_BEGUN)
        return super().Unary(request, context)


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.log_calls:
        servicer = LoggingSyncServicer() if args.sync else LoggingServicer()
    else:
        servicer = None
    return {
        "servicer": servicer,
        "max_receive_message_length": args.max_receive_message_length,
        "max_send_message_length": MAX_MESSAGE_LENGTH,
        "max_concurrent_streams": args.max_concurrent_streams or None,
        "keepalive_time": args.keepalive_time or None,
        "keepalive_timeout": args.keepalive_timeout,
    }


def add_port(server: Any, args: argparse.Namespace) -> int:
    host, port = args.host, args.port
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if args.tls_cert:
        context = rpc.ssl_server_context(
            args.tls_cert,
            args.tls_key,
            root_certificates=args.tls_ca,
            require_client_auth=args.require_client_auth,
        )
        return int(server.add_secure_port(address, context))
    return int(server.add_insecure_port(address))


def serve_blocking(args: argparse.Namespace) -> int:
    """The same service on rpc.sync.Server: plain def handlers in a thread pool."""
    server = make_sync_server(**server_options(args))
    bound = add_port(server, args)
    server.start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"PORT {bound}", flush=True)
    stdin = sys.stdin.fileno()
    while not stop.is_set():
        if select.select([stdin], [], [], 0.2)[0] and not os.read(stdin, 4096):
            break  # EOF: the parent went away
    server.stop(STOP_GRACE_SECONDS)
    return 0


async def serve(args: argparse.Namespace) -> int:
    server = make_server(**server_options(args))
    bound = add_port(server, args)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # EOF on stdin means the parent went away. Watched by the loop itself: a thread blocked in
    # a read of stdin would hold the stream's lock and abort the interpreter at exit.
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            stop.set()

    loop.add_reader(stdin, on_stdin)
    print(f"PORT {bound}", flush=True)
    await stop.wait()
    await server.stop(STOP_GRACE_SECONDS)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sync", action="store_true", help="serve with rpc.sync.Server")
    parser.add_argument("--log-calls", action="store_true", help="log each Unary call's start")
    add_server_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.sync:
        return serve_blocking(args)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
