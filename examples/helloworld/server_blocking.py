"""The greeter on the blocking API: ``python -m examples.helloworld.server_blocking``.

Plain ``def`` handlers in a thread pool; prints ``PORT <n>`` once listening; health checking and
server reflection are on unless ``--no-health`` / ``--no-reflection``. The same ``Greeter``
class also serves on the async ``rpc.Server`` (plain methods run in its thread pool there).
"""

from __future__ import annotations

import argparse
import logging

import rpc
from examples.helloworld import helloworld_h2rpc, helloworld_pb2
from rpc import services
from rpc._trace.diagram_output import HELP as TRACE_HTML_HELP
from rpc._trace.diagram_output import tracing


class Greeter(helloworld_h2rpc.GreeterBlockingServicer):
    def SayHello(
        self, request: helloworld_pb2.HelloRequest, context: rpc.sync.ServicerContext
    ) -> helloworld_pb2.HelloReply:
        return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50051", help="host:port or unix:path")
    parser.add_argument("--workers", type=int, default=8)
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
    logging.basicConfig(level=logging.INFO)
    with tracing(args.trace, args.trace_html) as trace:  # the diagram is written on Ctrl-C
        server = rpc.sync.Server(max_workers=args.workers, trace=trace)
        helloworld_h2rpc.add_GreeterServicer_to_server(Greeter(), server)
        services.enable_from_arguments(server, args)  # health and reflection (--no-health ...)
        port = server.add_insecure_port(args.address)
        server.start()
        print(f"PORT {port}", flush=True)
        try:
            server.wait_for_termination()
        except KeyboardInterrupt:
            server.stop(grace=1.0)


if __name__ == "__main__":
    main()
