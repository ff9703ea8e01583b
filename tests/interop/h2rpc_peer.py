"""EchoTest server on h2rpc, run as a real process for interop tests.

Usage::

    python tests/interop/h2rpc_peer.py --port 0 [--host 127.0.0.1]

Same protocol as grpcio_peer.py: prints ``PORT <n>`` once serving, serves until SIGTERM, SIGINT or
EOF on stdin, then stops with a short grace period.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "protos"))
sys.path.insert(0, str(HERE))
from compile import ensure_proto_path  # noqa: E402

ensure_proto_path()
from echo_servicer import make_server  # noqa: E402

MAX_MESSAGE_LENGTH = 64 * 1024 * 1024
STOP_GRACE_SECONDS = 1.0


async def serve(host: str, port: int) -> int:
    server = make_server(
        max_receive_message_length=MAX_MESSAGE_LENGTH, max_send_message_length=MAX_MESSAGE_LENGTH
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # EOF on stdin means the parent went away (a daemon thread: it must not block exit).
    threading.Thread(
        target=_wait_stdin_eof, args=(lambda: loop.call_soon_threadsafe(stop.set),), daemon=True
    ).start()
    print(f"PORT {bound}", flush=True)
    await stop.wait()
    await server.stop(STOP_GRACE_SECONDS)
    return 0


def _wait_stdin_eof(on_eof: Callable[[], object]) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    on_eof()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
