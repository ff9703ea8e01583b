"""Closing an async channel while a connection attempt that no call awaits any more is ending."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import h2rpc_test_pb2 as pb
from echo_servicer import make_server

import rpc
from tests.rpc.helpers import run

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]


def test_closing_while_an_abandoned_attempt_ends_logs_nothing() -> None:
    # A call whose deadline passes while the channel connects leaves the attempt running; when
    # the channel closes just as that attempt succeeds, asyncio.wait_for hands back the result
    # despite the cancellation, and the attempt ended in an error nobody took: asyncio logged
    # "Task exception was never retrieved" (seen in the soak). Closing at every point of the
    # attempt, one loop iteration apart, reaches that moment.
    async def main() -> list[Any]:
        problems: list[Any] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: problems.append(context.get("message")))
        server = make_server()
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            for _ in range(5):
                for iterations in range(40):
                    channel = rpc.Channel(f"127.0.0.1:{port}")
                    stub = rpc.Stub(channel, SERVICE)
                    call = asyncio.ensure_future(stub.Unary(pb.EchoRequest(), timeout=0.0005))
                    for _ in range(iterations):
                        await asyncio.sleep(0)
                    await channel.close()
                    try:
                        await call
                    except rpc.RpcError:
                        pass
                gc.collect()  # tasks whose exception nobody took are reported when collected
            await asyncio.sleep(0.05)
            gc.collect()
        finally:
            await server.stop(0)
        return problems

    assert run(main()) == []
