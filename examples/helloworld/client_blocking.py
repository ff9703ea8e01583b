"""The greeter client on the blocking API: ``python -m examples.helloworld.client_blocking``."""

from __future__ import annotations

import argparse

import rpc
from examples.helloworld import helloworld_h2rpc, helloworld_pb2
from rpc._trace.diagram_output import HELP as TRACE_HTML_HELP
from rpc._trace.diagram_output import tracing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--name", default="world")
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
    with (
        tracing(args.trace, args.trace_html) as trace,
        rpc.sync.Channel(args.target, trace=trace) as channel,
    ):
        stub = helloworld_h2rpc.GreeterBlockingStub(channel)
        reply = stub.SayHello(helloworld_pb2.HelloRequest(name=args.name), timeout=10)
    print(reply.message)


if __name__ == "__main__":
    main()
