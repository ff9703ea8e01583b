"""Route guide client: one call of each kind, ``python -m examples.route_guide.client``."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Callable, Union

import rpc
from examples.route_guide import route_guide_h2rpc
from examples.route_guide import route_guide_pb2 as pb
from examples.route_guide.data import load_features
from rpc._trace.diagram_output import HELP as TRACE_HTML_HELP
from rpc._trace.diagram_output import tracing


def _point(p: pb.Point) -> str:
    return f"({p.latitude / 1e7:.4f}, {p.longitude / 1e7:.4f})"


async def run(
    target: str,
    say: Callable[[str], None] = print,
    trace: Union[str, rpc.Tracer, None] = None,
    pcap: Union[str, rpc.PcapWriter, None] = None,
) -> None:
    async with rpc.Channel(target, trace=trace, pcap=pcap) as channel:
        stub = route_guide_h2rpc.RouteGuideStub(channel)

        say("unary         GetFeature")
        feature = await stub.GetFeature(pb.Point(latitude=409146138, longitude=-746188906))
        say(f"  -> {feature.name!r} at {_point(feature.location)}")

        say("server stream ListFeatures")
        rect = pb.Rectangle(
            lo=pb.Point(latitude=400000000, longitude=-750000000),
            hi=pb.Point(latitude=420000000, longitude=-730000000),
        )
        async for feature in stub.ListFeatures(rect):
            say(f"  <- {feature.name or '(unnamed)'!r} at {_point(feature.location)}")

        say("client stream RecordRoute")

        async def route() -> AsyncIterator[pb.Point]:
            for feature in load_features()[:4]:
                say(f"  -> visit {_point(feature.location)}")
                yield feature.location

        summary = await stub.RecordRoute(route())
        say(
            f"  <- {summary.point_count} points, {summary.feature_count} features, "
            f"{summary.distance} m"
        )

        say("bidi stream   RouteChat")
        call = stub.RouteChat()
        for i, text in enumerate(["first", "second", "third", "fourth"]):
            location = pb.Point(latitude=(i % 2) * 10_000_000, longitude=0)
            await call.write(pb.RouteNote(location=location, message=text))
            say(f"  -> {text!r} at {_point(location)}")
        await call.done_writing()
        async for note in call:
            say(f"  <- {note.message!r} at {_point(note.location)}")
        say(f"  status {(await call.code()).name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="localhost:50052")
    parser.add_argument(
        "--trace",
        nargs="?",
        const="all",
        metavar="KINDS",
        help="print the wire to stderr: frames,headers,messages (default all; add json)",
    )
    parser.add_argument("--trace-html", metavar="FILE", help=TRACE_HTML_HELP)
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    args = parser.parse_args()
    if args.pcap:  # every channel and server of this run is captured (rpc.PcapWriter)
        rpc.PcapWriter(args.pcap).activate()
    with tracing(args.trace, args.trace_html) as trace:
        rpc.run(run(args.target, trace=trace))


if __name__ == "__main__":
    main()
