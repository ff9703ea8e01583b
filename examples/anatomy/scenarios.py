"""The calls the anatomy walkthrough traces: one of each kind and each way a call can end.

A route guide server and a client on one event loop, the client's connection traced. Every
scenario is deterministic on the wire (same frames, same bytes, run after run), except for the
exact ``grpc-timeout`` value of the deadline scenario, which says how much of the deadline was
left when the request was built.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Callable

import rpc
from examples.route_guide import route_guide_pb2 as pb
from examples.route_guide.data import distance_metres, load_features
from transport import ConnectionOptions

ROUTE_GUIDE = pb.DESCRIPTOR.services_by_name["RouteGuide"]

#: The ``:authority`` the client sends, whatever port the server got: the bytes stay the same.
AUTHORITY = "localhost:50051"

# Points the servicer treats specially, one per scenario that needs it.
SLOW = pb.Point(latitude=1, longitude=1)  # never answers (the deadline expires)
MISSING = pb.Point(latitude=2, longitude=2)  # NOT_FOUND before anything is sent: Trailers-Only
COMPRESSED = pb.Point(latitude=404701380, longitude=-744781745)  # answered gzip-compressed
DRAINING = pb.Point(latitude=4, longitude=4)  # answered after a pause (the server stops meanwhile)
ONE_THEN_WAIT = pb.Rectangle(lo=pb.Point(latitude=5), hi=pb.Point(latitude=5))


class Guide:
    """A route guide whose answers depend only on the requests: the same bytes every run."""

    def __init__(self) -> None:
        self.features = load_features()
        self.handler_saw_cancel = asyncio.Event()
        self.draining_handler_started = asyncio.Event()

    def _at(self, point: pb.Point) -> pb.Feature:
        for feature in self.features:
            if feature.location == point:
                return feature
        return pb.Feature(name="", location=point)

    async def GetFeature(self, request: pb.Point, context: rpc.ServicerContext) -> pb.Feature:
        if request == SLOW:
            await asyncio.sleep(30)
        if request == MISSING:
            raise rpc.RpcError(rpc.StatusCode.NOT_FOUND, "no feature at (2, 2)")
        if request == COMPRESSED:
            context.set_compression("gzip")
        if request == DRAINING:
            self.draining_handler_started.set()
            await asyncio.sleep(0.3)
        return self._at(request)

    async def ListFeatures(
        self, request: pb.Rectangle, context: rpc.ServicerContext
    ) -> AsyncIterator[pb.Feature]:
        if request == ONE_THEN_WAIT:
            yield self.features[0]
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.handler_saw_cancel.set()
                raise
        lo_lat, hi_lat = sorted((request.lo.latitude, request.hi.latitude))
        lo_lon, hi_lon = sorted((request.lo.longitude, request.hi.longitude))
        for feature in self.features:
            loc = feature.location
            if lo_lat <= loc.latitude <= hi_lat and lo_lon <= loc.longitude <= hi_lon:
                yield feature

    async def RecordRoute(
        self, request_iterator: AsyncIterator[pb.Point], context: rpc.ServicerContext
    ) -> pb.RouteSummary:
        points = []
        async for point in request_iterator:
            points.append(point)
        return pb.RouteSummary(
            point_count=len(points),
            feature_count=sum(1 for p in points if self._at(p).name),
            distance=sum(distance_metres(a, b) for a, b in zip(points, points[1:])),
        )

    async def RouteChat(
        self, request_iterator: AsyncIterator[pb.RouteNote], context: rpc.ServicerContext
    ) -> AsyncIterator[pb.RouteNote]:
        async for note in request_iterator:
            yield pb.RouteNote(location=note.location, message=f"got {note.message!r}")


@dataclass
class Scenario:
    """One section of the walkthrough: what was done, and the events it produced."""

    key: str
    title: str
    events: list[rpc.TraceEvent] = field(default_factory=list)
    outcome: str = ""


async def _settle() -> None:
    """Let the frames still in flight land (client and server share this loop)."""
    for _ in range(5):
        await asyncio.sleep(0.02)


async def run_scenarios(tracer: rpc.Tracer) -> list[Scenario]:
    """Run every scenario against an in-process server, tracing the client's connection."""
    guide = Guide()
    server = rpc.Server(trace=False)
    server.add_service(ROUTE_GUIDE, guide)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = rpc.Channel(f"127.0.0.1:{port}", authority=AUTHORITY, trace=tracer)
    stub = rpc.Stub(channel, ROUTE_GUIDE)
    scenarios: list[Scenario] = []

    async def step(key: str, title: str, body: Callable[[], Awaitable[str]]) -> None:
        start = len(tracer.events)
        outcome = await body()
        await _settle()
        scenarios.append(Scenario(key, title, list(tracer.events[start:]), outcome))

    async def connect() -> str:
        await channel.channel_ready()
        return "connected"

    async def unary() -> str:
        feature = await stub.GetFeature(pb.Point(latitude=409146138, longitude=-746188906))
        return f"GetFeature returned {feature.name!r}"

    async def dynamic_table() -> str:
        # A second connection whose client encodes with HPACK's dynamic table.
        options = ConnectionOptions(reuse_header_blocks=False)
        async with rpc.Channel(
            f"127.0.0.1:{port}", authority=AUTHORITY, trace=tracer, connection_options=options
        ) as other:
            other_stub = rpc.Stub(other, ROUTE_GUIDE)
            for _ in range(2):
                await other_stub.GetFeature(pb.Point(latitude=409146138, longitude=-746188906))
        return "two GetFeature calls on a second connection, which was then closed"

    async def server_streaming() -> str:
        rect = pb.Rectangle(
            lo=pb.Point(latitude=400000000, longitude=-750000000),
            hi=pb.Point(latitude=410000000, longitude=-743000000),
        )
        names = [f.name async for f in stub.ListFeatures(rect)]
        return f"ListFeatures streamed {len(names)} features"

    async def client_streaming() -> str:
        async def points() -> AsyncIterator[pb.Point]:
            for feature in guide.features[:3]:
                yield feature.location

        summary = await stub.RecordRoute(points())
        return f"RecordRoute summed up {summary.point_count} points, {summary.distance} m"

    async def bidi() -> str:
        call = stub.RouteChat()
        replies = []
        for text in ("hello", "bye"):
            await call.write(pb.RouteNote(location=pb.Point(latitude=7), message=text))
            reply = await call.read()
            replies.append(reply.message)
        await call.done_writing()
        assert await call.read() is rpc.EOF
        return f"RouteChat: two notes each way, replies {replies}"

    async def deadline() -> str:
        # The deadline starts when the call is made; its request leaves 50 ms later (a call is
        # sent when first awaited). So the server, which counts from the request's arrival,
        # always gives up after the client: the same frames every run.
        call = stub.GetFeature(SLOW, timeout=0.15)
        await asyncio.sleep(0.05)
        try:
            await call
        except rpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
        raise AssertionError("the slow call should have timed out")

    async def cancellation() -> str:
        call = stub.ListFeatures(ONE_THEN_WAIT)
        first = await call.read()
        call.cancel()
        await asyncio.wait_for(guide.handler_saw_cancel.wait(), 5)
        return f"read {first.name!r}, then cancelled; the handler saw CancelledError"

    async def compressed() -> str:
        feature = await stub.GetFeature(COMPRESSED, compression="gzip")
        return f"GetFeature returned {feature.name!r} (gzip both ways)"

    async def trailers_only() -> str:
        try:
            await stub.GetFeature(MISSING)
        except rpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
        raise AssertionError("the call should have failed")

    async def goaway() -> str:
        call = asyncio.ensure_future(stub.GetFeature(DRAINING))
        # Stop once the request is at the server and its handler is pausing: the GOAWAY then
        # names this call's stream as the last one the server processes (a fixed sleep here
        # sometimes stopped the server first on a busy machine, and the GOAWAY said 15, not 17).
        await asyncio.wait_for(guide.draining_handler_started.wait(), 10)
        await server.stop(grace=5)
        feature = await call
        return f"the call in flight finished ({feature.location.latitude}), then the server closed"

    await step("connect", "Opening the connection", connect)
    await step("unary", "A unary call: GetFeature", unary)
    await step("dynamic-table", "HPACK's dynamic table: the same call, twice", dynamic_table)
    await step("server-streaming", "Server streaming: ListFeatures", server_streaming)
    await step("client-streaming", "Client streaming: RecordRoute", client_streaming)
    await step("bidi", "Bidirectional streaming: RouteChat", bidi)
    await step("deadline", "A deadline expires", deadline)
    await step("cancel", "The client cancels", cancellation)
    await step("compressed", "A compressed call", compressed)
    await step("trailers-only", "An error, Trailers-Only", trailers_only)
    await step("goaway", "Graceful shutdown: GOAWAY", goaway)
    tracer.stop()
    await channel.close()
    return scenarios
