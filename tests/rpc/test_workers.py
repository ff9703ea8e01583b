"""rpc.serve(workers=N): several processes share one port (SO_REUSEPORT)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

import rpc


async def whoami(request: bytes, context: rpc.ServicerContext) -> bytes:
    return str(os.getpid()).encode()


def factory() -> rpc.Server:
    handler = rpc.unary_unary_rpc_method_handler(whoami)
    return rpc.Server([rpc.method_handlers_generic_handler("w.W", {"Who": handler})])


@pytest.mark.skipif(sys.platform == "win32", reason="SO_REUSEPORT and fork")
def test_two_workers_share_one_port_and_both_serve() -> None:
    stop = threading.Event()
    seen: set[bytes] = set()

    def on_ready(port: int) -> None:
        try:
            for _ in range(40):  # a new connection each time: the kernel spreads them
                with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
                    seen.add(channel.unary_unary("/w.W/Who")(b"", timeout=5))
                if len(seen) == 2:
                    break
        finally:
            stop.set()

    rpc.serve(factory, "127.0.0.1:0", workers=2, on_ready=on_ready, stop=stop, grace=1)
    assert len(seen) == 2
    assert str(os.getpid()).encode() not in seen  # served by the workers, not the parent
