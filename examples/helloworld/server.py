"""The greeter server: ``python -m examples.helloworld.server [--address 127.0.0.1:50051]``.

Prints ``PORT <n>`` once listening (``--address 127.0.0.1:0`` picks a free port). Health checking
and server reflection are on (``grpcurl -plaintext 127.0.0.1:50051 list``) unless ``--no-health``
/ ``--no-reflection``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Union

import rpc
from examples.helloworld import helloworld_h2rpc, helloworld_pb2
from rpc import services
from rpc._trace.diagram_output import HELP as TRACE_HTML_HELP
from rpc._trace.diagram_output import tracing


class Greeter(helloworld_h2rpc.GreeterServicer):
    """The generated base types the methods (and answers UNIMPLEMENTED for those left out)."""

    async def SayHello(
        self, request: helloworld_pb2.HelloRequest, context: rpc.ServicerContext
    ) -> helloworld_pb2.HelloReply:
        return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")


async def serve(
    address: str,
    trace: Union[str, rpc.Tracer, None] = None,
    *,
    health: bool = True,
    reflection: bool = True,
) -> None:
    server = rpc.Server(trace=trace)
    helloworld_h2rpc.add_GreeterServicer_to_server(Greeter(), server)
    services.enable(server, health=health, reflection=reflection)  # (--no-health ...)
    port = server.add_insecure_port(address)
    await server.start()
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50051", help="host:port or unix:path")
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
        rpc.run(
            serve(args.address, trace, health=not args.no_health, reflection=not args.no_reflection)
        )


if __name__ == "__main__":
    main()
