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
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "protos"))
sys.path.insert(0, str(HERE))
from compile import ensure_proto_path  # noqa: E402

ensure_proto_path()
from echo_servicer import make_server  # noqa: E402
from peer_options import add_server_options  # noqa: E402

import rpc  # noqa: E402

MAX_MESSAGE_LENGTH = 64 * 1024 * 1024
STOP_GRACE_SECONDS = 1.0


async def serve(args: argparse.Namespace) -> int:
    host, port = args.host, args.port
    server = make_server(
        max_receive_message_length=args.max_receive_message_length,
        max_send_message_length=MAX_MESSAGE_LENGTH,
        max_concurrent_streams=args.max_concurrent_streams or None,
        keepalive_time=args.keepalive_time or None,
        keepalive_timeout=args.keepalive_timeout,
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if args.tls_cert:
        context = rpc.ssl_server_context(
            args.tls_cert,
            args.tls_key,
            root_certificates=args.tls_ca,
            require_client_auth=args.require_client_auth,
        )
        bound = server.add_secure_port(address, context)
    else:
        bound = server.add_insecure_port(address)
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
    add_server_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
