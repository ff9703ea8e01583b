"""The client side of the runner's memory section (h2rpc only); the runner reads both processes'
memory from /proc while this runs.

``slow-reader``: one server-streaming call of 1 MiB messages (far more than will ever be read),
read one message every ``--interval`` seconds for ``--seconds``: the server can produce much
faster than this reader consumes, so only flow control keeps either process's memory flat.
Prints ``STARTED`` after the first message, then ``RESULT {json}``.

``idle``: opens connections (one channel each, one unary call each, then idle), pausing at each
of ``--milestones`` with ``CONNECTED <n>`` until the runner writes a line on stdin; then, on
``call``, makes one call on every connection at once and prints ``CALLED {json}``; ``quit`` (or
EOF) closes everything.

``python -m tests.bench.memory_client slow-reader|idle --target 127.0.0.1:PORT [--sync]``.
Python 3.9+ and PyPy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from typing import Any

from .service import MAX_MESSAGE, SMALL_BODY, messages, prepare_process

STREAM_MESSAGE = 1024 * 1024
STREAM_COUNT = 1_000_000


def _print(line: str) -> None:
    print(line, flush=True)


def _watchdog(seconds: float) -> None:
    def expire() -> None:
        print(f"memory client watchdog: still running after {seconds:.0f} s", file=sys.stderr)
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


async def slow_reader_async(args: argparse.Namespace) -> None:
    import rpc

    m = messages()
    async with rpc.Channel(args.target, max_receive_message_length=MAX_MESSAGE) as channel:
        stub = rpc.Stub(channel, m.service)
        call = stub.ServerStream(m.StreamRequest(size=STREAM_MESSAGE, count=STREAM_COUNT))
        read = 0
        await call.read()
        read += 1
        _print("STARTED")
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            await asyncio.sleep(args.interval)
            await call.read()
            read += 1
        call.cancel()
    _print("RESULT " + json.dumps({"messages_read": read, "bytes_read": read * STREAM_MESSAGE}))


def slow_reader_blocking(args: argparse.Namespace) -> None:
    import rpc

    m = messages()
    with rpc.sync.Channel(args.target, max_receive_message_length=MAX_MESSAGE) as channel:
        stub = rpc.Stub(channel, m.service)
        call = stub.ServerStream(m.StreamRequest(size=STREAM_MESSAGE, count=STREAM_COUNT))
        read = 0
        next(call)
        read += 1
        _print("STARTED")
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(args.interval)
            next(call)
            read += 1
        call.cancel()
    _print("RESULT " + json.dumps({"messages_read": read, "bytes_read": read * STREAM_MESSAGE}))


async def idle(args: argparse.Namespace) -> None:
    import rpc

    m = messages()
    request = m.Payload(body=SMALL_BODY)
    loop = asyncio.get_running_loop()
    channels: list[Any] = []
    stubs: list[Any] = []

    async def command() -> str:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        return line.strip() or "quit"

    async def connect_one() -> None:
        channel = rpc.Channel(args.target)
        stub = rpc.Stub(channel, m.service)
        channels.append(channel)
        stubs.append(stub)
        await stub.Unary(request, timeout=30)

    milestones = sorted(int(n) for n in args.milestones.split(","))
    try:
        for milestone in milestones:
            while len(channels) < milestone:
                batch = min(args.batch, milestone - len(channels))
                await asyncio.gather(*(connect_one() for _ in range(batch)))
            _print(f"CONNECTED {len(channels)}")
            if await command() == "quit":
                return
        started = time.perf_counter()
        results = await asyncio.gather(
            *(stub.Unary(request, timeout=60) for stub in stubs), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        _print(
            "CALLED "
            + json.dumps(
                {
                    "calls": len(results),
                    "failed": len(failed),
                    "first_error": repr(failed[0]) if failed else None,
                    "seconds": time.perf_counter() - started,
                }
            )
        )
        await command()
    finally:
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)


def main() -> int:
    prepare_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["slow-reader", "idle"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--sync", action="store_true", help="slow-reader: rpc.sync.Channel")
    parser.add_argument("--seconds", type=float, default=6.0, help="slow-reader: how long")
    parser.add_argument("--interval", type=float, default=0.1, help="slow-reader: per message")
    parser.add_argument("--milestones", default="1,100,1000", help="idle: connection counts")
    parser.add_argument("--batch", type=int, default=100, help="idle: connections opened at once")
    args = parser.parse_args()
    _watchdog(args.seconds + 300)
    if args.mode == "slow-reader":
        if args.sync:
            slow_reader_blocking(args)
        else:
            asyncio.run(slow_reader_async(args))
    else:
        asyncio.run(idle(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
