"""Route guide server, all four call kinds: ``python -m examples.route_guide.server``.

Prints ``PORT <n>`` once listening (``--address 127.0.0.1:0`` picks a free port). Health checking
and server reflection are on unless ``--no-health`` / ``--no-reflection``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import AsyncIterator
from typing import Union

import rpc
from examples.route_guide import route_guide_h2rpc
from examples.route_guide import route_guide_pb2 as pb
from examples.route_guide.data import distance_metres, load_features
from rpc import services
from rpc._trace.diagram_output import HELP as TRACE_HTML_HELP
from rpc._trace.diagram_output import tracing


class RouteGuide(route_guide_h2rpc.RouteGuideServicer):
    def __init__(self) -> None:
        self.features = load_features()
        self.notes: dict[tuple[int, int], list[pb.RouteNote]] = {}

    def _feature_at(self, point: pb.Point) -> pb.Feature:
        for feature in self.features:
            if feature.location == point:
                return feature
        return pb.Feature(name="", location=point)

    async def GetFeature(self, request: pb.Point, context: rpc.ServicerContext) -> pb.Feature:
        return self._feature_at(request)

    async def ListFeatures(
        self, request: pb.Rectangle, context: rpc.ServicerContext
    ) -> AsyncIterator[pb.Feature]:
        lo_lat, hi_lat = sorted((request.lo.latitude, request.hi.latitude))
        lo_lon, hi_lon = sorted((request.lo.longitude, request.hi.longitude))
        for feature in self.features:
            loc = feature.location
            if lo_lat <= loc.latitude <= hi_lat and lo_lon <= loc.longitude <= hi_lon:
                yield feature

    async def RecordRoute(
        self, request_iterator: AsyncIterator[pb.Point], context: rpc.ServicerContext
    ) -> pb.RouteSummary:
        point_count = feature_count = distance = 0
        previous = None
        start = time.monotonic()
        async for point in request_iterator:
            point_count += 1
            if self._feature_at(point).name:
                feature_count += 1
            if previous is not None:
                distance += distance_metres(previous, point)
            previous = point
        return pb.RouteSummary(
            point_count=point_count,
            feature_count=feature_count,
            distance=distance,
            elapsed_time=int(time.monotonic() - start),
        )

    async def RouteChat(
        self, request_iterator: AsyncIterator[pb.RouteNote], context: rpc.ServicerContext
    ) -> AsyncIterator[pb.RouteNote]:
        async for note in request_iterator:
            key = (note.location.latitude, note.location.longitude)
            earlier = self.notes.setdefault(key, [])
            for previous in list(earlier):
                yield previous
            earlier.append(note)


async def serve(
    address: str,
    trace: Union[str, rpc.Tracer, None] = None,
    *,
    health: bool = True,
    reflection: bool = True,
) -> None:
    server = rpc.Server(trace=trace)
    route_guide_h2rpc.add_RouteGuideServicer_to_server(RouteGuide(), server)
    services.enable(server, health=health, reflection=reflection)  # (--no-health ...)
    port = server.add_insecure_port(address)
    await server.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(server.stop(1.0)))
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50052", help="host:port or unix:path")
    parser.add_argument(
        "--trace",
        nargs="?",
        const="all",
        metavar="KINDS",
        help="print the wire to stderr: frames,headers,messages (default all; add json)",
    )
    parser.add_argument("--trace-html", metavar="FILE", help=TRACE_HTML_HELP)
    services.add_arguments(parser)
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    args = parser.parse_args()
    if args.pcap:  # every channel and server of this run is captured (rpc.PcapWriter)
        rpc.PcapWriter(args.pcap).activate()
    with tracing(args.trace, args.trace_html) as trace:  # written when the server stops
        rpc.run(
            serve(args.address, trace, health=not args.no_health, reflection=not args.no_reflection)
        )


if __name__ == "__main__":
    main()
