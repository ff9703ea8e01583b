"""A backend for the kill test, run as a real process: ``/proxy.Slow/Echo`` answers its request
bytes after ``--delay`` seconds, headers, message and trailers together (so a call running
when the process is killed has had no response headers: under gRFC A6 it is still retryable).

``python tests/proxies/slow_echo_peer.py --port 0 [--host H] [--delay S]``: prints ``PORT <n>``
once serving (tests/interop/peers.py's protocol), serves until SIGTERM or EOF on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import rpc

SERVICE = "proxy.Slow"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args()

    async def echo(request: bytes, context: rpc.ServicerContext) -> bytes:
        await asyncio.sleep(args.delay)
        return request

    async def serve() -> None:
        handler = rpc.unary_unary_rpc_method_handler(echo)
        server = rpc.Server([rpc.method_handlers_generic_handler(SERVICE, {"Echo": handler})])
        port = server.add_insecure_port(f"{args.host}:{args.port}")
        await server.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
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
        print(f"PORT {port}", flush=True)
        await stop.wait()
        await server.stop(0.5)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
