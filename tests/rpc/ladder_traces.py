"""Real traces to draw: calls between an h2rpc client and server on loopback, traced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Optional

import rpc
from examples.route_guide import route_guide_pb2 as pb
from tests.rpc.helpers import run, serving
from transport import ConnectionOptions

GUIDE = pb.DESCRIPTOR.services_by_name["RouteGuide"]
POINT = pb.Point(latitude=409146138, longitude=-746188906)
#: A note large enough to move the flow-control windows (and need WINDOW_UPDATEs).
BIG = "x" * 100_000


class Guide:
    async def GetFeature(self, request: pb.Point, context: rpc.ServicerContext) -> pb.Feature:
        if request.latitude == 404:
            raise rpc.RpcError(rpc.StatusCode.NOT_FOUND, "nothing here")
        return pb.Feature(name="Berkshire Valley", location=request)

    async def ListFeatures(
        self, request: pb.Rectangle, context: rpc.ServicerContext
    ) -> AsyncIterator[pb.Feature]:
        for i in range(3):
            yield pb.Feature(name=f"f{i}", location=pb.Point(latitude=i))

    async def RouteChat(
        self, request_iterator: AsyncIterator[pb.RouteNote], context: rpc.ServicerContext
    ) -> AsyncIterator[pb.RouteNote]:
        async for note in request_iterator:
            yield pb.RouteNote(location=note.location, message=f"got {len(note.message)}")


async def _calls(
    client: Optional[rpc.Tracer], server: Optional[rpc.Tracer], dynamic_table: bool
) -> None:
    rpc_server = rpc.Server(trace=server if server is not None else False)
    rpc_server.add_service(GUIDE, Guide())
    options = ConnectionOptions(reuse_header_blocks=not dynamic_table)
    async with serving(rpc_server) as target:
        async with rpc.Channel(
            target, trace=client if client is not None else False, connection_options=options
        ) as channel:
            stub = rpc.Stub(channel, GUIDE)
            await stub.GetFeature(POINT)
            assert len([f async for f in stub.ListFeatures(pb.Rectangle())]) == 3
            call = stub.RouteChat()
            await call.write(pb.RouteNote(message=BIG))
            assert (await call.read()).message == f"got {len(BIG)}"
            await call.done_writing()
            assert await call.read() is rpc.EOF
            try:
                await stub.GetFeature(pb.Point(latitude=404))
            except rpc.RpcError as error:
                assert error.code() == rpc.StatusCode.NOT_FOUND
            for _ in range(5):  # the last frames in flight land before the tracers stop
                await asyncio.sleep(0.02)


def traced_calls(
    sides: tuple[str, ...] = ("client", "server"), *, dynamic_table: bool = False
) -> list[rpc.TraceEvent]:
    """The events of four calls (one of each ending) as ``sides`` recorded them, in order."""
    tracer = rpc.Tracer()
    run(
        _calls(
            tracer if "client" in sides else None,
            tracer if "server" in sides else None,
            dynamic_table,
        )
    )
    tracer.stop()
    return list(tracer.events)
